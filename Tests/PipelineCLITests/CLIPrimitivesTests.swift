import CommandPipeline
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

    static func piece(_ text: String) -> JSONStreamSplitter.Piece {
        JSONStreamSplitter.Piece(bytes: Array(text.utf8), offset: 0, line: 1)
    }

    /// Issue 23: the CLI's decoder validates each command and hands the engine the validated
    /// value; the engine's validation unit does not check it a second time.
    @Test func aCommandTheRunLoopReadsIsValidatedOnce() async throws {
        let loop = RunLoop(mode: .execute(PipelineEngine(provider: MockProvider.make())), providerName: "mock", concurrency: 1, unordered: false, resume: nil, stats: Stats())
        let input = #"{"id":"c1","model":"mock","prompt":"p 1"}"#
        let probe = ValidationProbe()
        let outcome = await ValidationProbe.$counter.withValue(probe) { await loop.process(Self.piece(input), index: 0) }
        #expect(outcome.status == .succeeded)
        #expect(probe.count.load(ordering: .relaxed) == 1, "validated by the decoder only, not again by the engine")
        let line = String(decoding: outcome.line, as: UTF8.self)
        #expect(line.hasPrefix(#"{"id":"c1","index":0,"status":"succeeded","#))
        #expect(line.hasSuffix(#","metadata":{},"input_hash":""# + ResumeLedger.digest(Array(input.utf8)) + "\"}\n"), "the input's digest is the record's last key")
    }

    /// The engine trusts a validated command only as long as it is the one validated: a hook
    /// that replaces it has the new one checked (and a broken one rejected before any call).
    @Test func aCommandAHookReplacedIsValidatedByTheEngine() async throws {
        struct Breaking: CommandHook {
            var name: String { "breaking" }
            func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand {
                PlannedCommand(id: command.id, plan: ExecutionPlan(call: APICall(model: "", parts: [.text("q")])))
            }
        }
        var configuration = EngineConfiguration()
        configuration.hooks = [Breaking()]
        let engine = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
        var issues: [ValidationIssue] = []
        let valid = try #require(ValidatedCommand(checking: PlannedCommand(id: "c", plan: ExecutionPlan(call: APICall(model: "mock", parts: [.text("q")]))), issues: &issues))
        #expect(issues.isEmpty)
        let probe = ValidationProbe()
        let outcome = await ValidationProbe.$counter.withValue(probe) { await engine.run(valid) }
        guard case .failure(let error) = outcome.result else {
            Issue.record("the hook's broken command ran")
            return
        }
        #expect(error.kind == .invalidCommand)
        #expect(error.path == "plan.calls[0].model")
        #expect(probe.count.load(ordering: .relaxed) >= 1, "the hook's command was checked")

        let plain = PipelineEngine(provider: MockProvider.make())
        let unchanged = ValidationProbe()
        let succeeded = await ValidationProbe.$counter.withValue(unchanged) { await plain.run(valid) }
        #expect(succeeded.succeeded)
        #expect(unchanged.count.load(ordering: .relaxed) == 0, "a validated command is not checked again")
        let checked = ValidationProbe()
        _ = await ValidationProbe.$counter.withValue(checked) { await plain.run(valid.command) }
        #expect(checked.count.load(ordering: .relaxed) == 1, "a plain command is checked by the engine")
    }

    /// Issue 23: a `--hook-exec` program's replacement is read by the hook and validated once,
    /// by the engine (before, the hook checked its rules and the engine checked them again).
    @Test func anExecHooksReplacementIsValidatedOnceByTheEngine() async throws {
        let dir = try temporaryDirectory()
        let program = dir.appendingPathComponent("replace.py").path
        // Replaces command "good" by another valid one, and command "bad" by one with an empty model.
        let source = #"""
            #!/usr/bin/env python3
            import json, sys
            for line in sys.stdin:
                q = json.loads(line)
                a = {"hook": q["hook"], "index": q["index"]}
                if q["hook"] == "before":
                    a["command"] = {"id": q["id"], "model": "mock" if q["id"] == "good" else "", "prompt": "replaced"}
                sys.stdout.write(json.dumps(a) + "\n")
                sys.stdout.flush()
            """#
        _ = FileManager.default.createFile(atPath: program, contents: Data(source.utf8))
        chmod(program, 0o755)
        let hook = try ExecHook(program: program, timeout: .seconds(60))
        defer { hook.finish() }
        var configuration = EngineConfiguration()
        configuration.hooks = [hook]
        let engine = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
        for (id, valid) in [("good", true), ("bad", false)] {
            var issues: [ValidationIssue] = []
            let command = try #require(ValidatedCommand(checking: PlannedCommand(id: id, plan: ExecutionPlan(call: APICall(model: "mock", parts: [.text("q")]))), issues: &issues))
            let probe = ValidationProbe()
            let outcome = await ValidationProbe.$counter.withValue(probe) { await engine.run(command) }
            if valid {
                #expect(probe.count.load(ordering: .relaxed) == 1, "the replacement is validated once, by the engine")
                #expect(outcome.succeeded, "\(outcome.result)")
            } else {
                // (The engine's unit checks an invalid command in `applies` and again in `handle`.)
                guard case .failure(let error) = outcome.result else {
                    Issue.record("the hook's broken replacement ran")
                    continue
                }
                #expect(error.kind == .invalidCommand)
                #expect(error.path == "plan.calls[0].model", "\(error)")
            }
        }
    }

    /// A command rejected before it ran: `run` writes its input's digest as the record's last
    /// key (through `ResultWriter`, not spliced in afterwards); `--validate` writes none.
    @Test func aRejectedRecordCarriesItsInputHashInRunOnly() async throws {
        let input = #"{"id":"bad","model":"","prompt":"p"}"#
        let run = RunLoop(mode: .execute(PipelineEngine(provider: MockProvider.make())), providerName: "mock", concurrency: 1, unordered: false, resume: nil, stats: Stats())
        let failed = String(decoding: await run.process(Self.piece(input), index: 3).line, as: UTF8.self)
        #expect(failed.hasPrefix(#"{"id":"bad","index":3,"status":"failed","error":{"kind":"invalid_command""#))
        #expect(failed.hasSuffix(#","metadata":{},"input_hash":""# + ResumeLedger.digest(Array(input.utf8)) + "\"}\n"))
        let validate = RunLoop(mode: .validate(ModelCatalog()), providerName: "mock", concurrency: 1, unordered: false, resume: nil, stats: Stats())
        let rejected = String(decoding: await validate.process(Self.piece(input), index: 3).line, as: UTF8.self)
        #expect(rejected.hasSuffix(#","metadata":{}}"# + "\n"))
        #expect(!rejected.contains("input_hash"))
        var bytes: [UInt8] = []
        ResultWriter.hexDigits(0x0041_157a_c45c_93f7, to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == "0041157ac45c93f7", "16 digits, leading zeros kept")
    }
}

/// Ordered output's reorder buffer: credits of a result waiting behind an earlier command come
/// back at once while the waiting results fit in the limit, and with its line otherwise.
@Suite struct ReorderBufferTests {
    @Test func creditsComeBackWhenACommandEndsWhileTheWaitingFitTheLimit() {
        var buffer = ReorderBuffer<String>(limit: 1_000)
        var written: [String] = []
        // Command 0 hangs; 1, 2 and 3 finish (400 bytes each, 2 credits each).
        #expect(buffer.add("r1", index: 1, size: 400, credits: 2) { written.append($0) } == 2, "fits: its credits are back at once")
        #expect(buffer.add("r2", index: 2, size: 400, credits: 2) { written.append($0) } == 2)
        #expect(buffer.add("r3", index: 3, size: 400, credits: 2) { written.append($0) } == 0, "past the limit: held until written")
        #expect(written.isEmpty && buffer.bytes == 1_200)
        // A result too small still counts the minimum.
        var tiny = ReorderBuffer<String>(limit: 200)
        #expect(tiny.add("s1", index: 1, size: 0, credits: 1) { _ in } == 1)
        #expect(tiny.add("s2", index: 2, size: 0, credits: 1) { _ in } == 0, "two entries of 128 pass 200")
        // Command 0 ends: everything is written in order; the held credits (r3's and its own) come back.
        #expect(buffer.add("r0", index: 0, size: 400, credits: 5) { written.append($0) } == 5 + 2)
        #expect(written == ["r0", "r1", "r2", "r3"])
        #expect(buffer.isEmpty && buffer.bytes == 0 && buffer.next == 4)
        // In turn: written at once, credits with it.
        #expect(buffer.add("r4", index: 4, size: 10_000, credits: 3) { written.append($0) } == 3)
        #expect(written.last == "r4")
    }

    /// The limit is inclusive: waiting results that fill it exactly still give their credits
    /// back at once; one byte more (a result counts at least `minimumCost`) does not.
    @Test func resultsThatFillTheLimitExactlyStillGiveTheirCreditsBack() {
        var buffer = ReorderBuffer<String>(limit: 800)
        #expect(buffer.add("r1", index: 1, size: 400, credits: 1) { _ in } == 1)
        #expect(buffer.add("r2", index: 2, size: 400, credits: 1) { _ in } == 1, "800 bytes of 800 fit")
        #expect(buffer.add("r3", index: 3, size: 1, credits: 1) { _ in } == 0, "928 bytes do not")
        #expect(buffer.bytes == 928)
    }

    @Test func whatWaitsBehindACommandThatNeverRanIsDrainedInOrder() {
        var buffer = ReorderBuffer<Int>(limit: 1 << 20)
        for index in [5, 3, 4, 2] { _ = buffer.add(index, index: index, size: 10, credits: 1) { _ in Issue.record("nothing is in turn") } }
        #expect(buffer.drain() == [2, 3, 4, 5])
        #expect(buffer.isEmpty && buffer.bytes == 0)
    }
}
