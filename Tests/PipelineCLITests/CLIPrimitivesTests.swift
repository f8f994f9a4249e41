import Foundation
import Synchronization
import Testing

@testable import pipeline

/// Small pieces of the CLI, tested on their own: the resume digest, one-line stderr text and
/// the run loop's inbox.
@Suite struct CLIPrimitivesTests {
    /// FNV-1a 64, as 16 hex digits with leading zeros (values checked against a Python FNV-1a).
    @Test func theInputDigestIsFNV1aInSixteenHexDigits() {
        #expect(ResumeLedger.digest([]) == "cbf29ce484222325")
        #expect(ResumeLedger.digest(Array("a".utf8)) == "af63dc4c8601ec8c")
        #expect(ResumeLedger.digest(Array("x7500".utf8)) == "0041157ac45c93f7", "leading zeros kept")
        var line: [UInt8] = Array("{".utf8)
        ResumeLedger.appendDigest(of: Array(#"{"model":"mock","prompt":"Summarise item 0 in one line."}"#.utf8), to: &line)
        #expect(String(decoding: line, as: UTF8.self) == "{58d1d3ab443f990a")
    }

    @Test func oneLineEscapesControlCharacters() {
        #expect(StandardError.oneLine("plain text é") == "plain text é")
        #expect(StandardError.oneLine("a\nb\rc\td") == #"a\nb\rc\td"#)
        #expect(StandardError.oneLine("\u{1b}[31mred\u{7f}\u{85}") == #"\u{1b}[31mred\u{7f}\u{85}"#)
    }

    /// Everything posted reaches the receiver once, in each sender's order, whether the
    /// receiver was parked or busy; nothing is lost between batches.
    @Test func theInboxDeliversEveryMessageOnceInEachSendersOrder() async {
        let inbox = Mailbox<(sender: Int, n: Int)>()
        let senders = 4, each = 5_000
        let received = await withTaskGroup(of: Void.self, returning: [[Int]].self) { group in
            for sender in 0..<senders {
                group.addTask { for n in 0..<each { inbox.post((sender, n)) } }
            }
            var seen = [[Int]](repeating: [], count: senders)
            var total = 0
            var batches = 0
            while total < senders * each && batches < senders * each {
                let batch = await inbox.receive()
                #expect(!batch.isEmpty, "a receive returns only with messages")
                batches += 1
                for message in batch { seen[message.sender].append(message.n) }
                total += batch.count
            }
            await group.waitForAll()
            return seen
        }
        for sender in 0..<senders { #expect(received[sender] == Array(0..<each), "sender \(sender)") }
    }

    /// A receiver that parks is woken by the next post.
    @Test func aParkedReceiverIsWokenByAPost() async {
        let inbox = Mailbox<Int>()
        let parked = Atomic<Bool>(false)
        let receiver = Task {
            parked.store(true, ordering: .releasing)
            return await inbox.receive()
        }
        var spins = 0
        while !parked.load(ordering: .acquiring) && spins < 1_000_000 { spins += 1; await Task.yield() }
        inbox.post(7)
        #expect(await receiver.value == [7])
    }
}
