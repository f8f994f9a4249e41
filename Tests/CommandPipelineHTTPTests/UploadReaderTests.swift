import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import Synchronization
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Upload bodies are read off the event loop's thread (`HTTP1BodyReader`): a read that stalls
/// holds up its own upload only, never another exchange on the same transport; the pieces are
/// the body's bytes in order; a single-file body (no tail: Gemini's resumable upload,
/// `upload(_:fromFile:)`) that grows or shrinks while it is sent fails, never sent long or short.
/// Every wait is bounded (300 s: suites run beside this one may hold the concurrency pool for
/// minutes on a loaded machine before these tasks run); nothing sleeps on the real clock.
@Suite struct UploadReaderTests {
    /// Reads that block until `release()` (at most 300 s); `entered` is raised once `expected`
    /// reads are blocked in it.
    final class Gate: Sendable {
        private let opened = DispatchSemaphore(value: 0)
        private let state = Mutex((entered: 0, released: false))
        let entered = ServerSignal("the file reads started")
        let expected: Int

        init(expected: Int = 1) { self.expected = expected }

        /// Blocks the calling (reader) thread until released.
        func pass() {
            if state.withLock({ state in
                state.entered += 1
                return state.entered == expected
            }) {
                entered.raise()
            }
            _ = opened.wait(timeout: .now() + 300)
            opened.signal()  // stays open for later reads
        }

        func release() {
            state.withLock { $0.released = true }
            opened.signal()
        }

        var isReleased: Bool { state.withLock { $0.released } }
    }

    /// A body of `content` read through a function that waits at `gate` before the read at `stallAt`.
    static func gatedBody(_ content: [UInt8], stallAt: Int, gate: Gate, head: [UInt8] = [], tail: [UInt8] = []) throws -> HTTP1FileBody {
        try HTTP1FileBody(head: head, size: content.count, path: "/stalled/file.bin", tail: tail) { offset, buffer in
            if offset == stallAt { gate.pass() }
            guard offset < content.count else { return 0 }
            let n = min(buffer.count, content.count - offset)
            content.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
            return n
        }
    }

    /// Every piece the reader hands out, in order, waiting (bounded) on its wake when none is ready.
    static func drain(_ body: HTTP1FileBody) async throws -> [UInt8] {
        let woken = AsyncStream<Void>.makeStream()
        let reader = HTTP1BodyReader(body) { woken.continuation.yield() }
        var wakes = woken.stream.makeAsyncIterator()
        var out: [UInt8] = []
        var buffers = Set<UnsafeRawPointer>()
        while out.count < body.size {
            switch reader.next() {
            case .piece(let piece):
                #expect(!piece.isEmpty && piece.count <= HTTP1FileBody.chunk)
                out += piece
                _ = piece.withUnsafeBytes { buffers.insert(UnsafeRawPointer($0.baseAddress!)) }
                reader.recycle(piece)
            case .waiting:
                _ = await wakes.next()
            case .failed(let failure):
                throw failure
            }
        }
        #expect(buffers.count <= 2, "pieces are read into the two buffers given back, not fresh ones (\(buffers.count))")
        return out
    }

    @Test func theReaderHandsOutTheBodysBytesInOrder() async throws {
        let content = MultipartStreamingTests.pattern(HTTP1FileBody.chunk * 5 + 77)
        let url = try MultipartStreamingTests.file(content)
        defer { try? FileManager.default.removeItem(at: url) }
        let head = Array("head-".utf8)
        let tail = Array("-tail".utf8)
        let body = try HTTP1FileBody(head: head, file: try MultipartStreamingTests.opened(url), tail: tail)
        #expect(try await Self.drain(body) == head + content + tail)
        // No head, no tail (a resumable upload's body): the file's bytes exactly.
        let bare = try HTTP1FileBody(head: [], file: try MultipartStreamingTests.opened(url), tail: [])
        #expect(try await Self.drain(bare) == content)
    }

    /// The read stalls: the reader answers `waiting` at once (the loop is never held), wakes
    /// when the piece is there; a cancelled reader's stalled read, released, does not wake the loop.
    @Test func aStalledReadAnswersWaitingAndWakesWhenThePieceIsThere() async throws {
        let content = MultipartStreamingTests.pattern(1000)
        let gate = Gate()
        let body = try Self.gatedBody(content, stallAt: 0, gate: gate)
        let wakes = Tally()
        let woken = ServerSignal("the reader woke the loop")
        let reader = HTTP1BodyReader(body) {
            _ = wakes.add()
            woken.raise()
        }
        try await gate.entered.wait(seconds: 300)
        guard case .waiting = reader.next() else {
            Issue.record("a piece was handed out while its read was stalled")
            return
        }
        gate.release()
        try await woken.wait(seconds: 300)
        guard case .piece(let piece) = reader.next() else {
            Issue.record("no piece after the wake")
            return
        }
        #expect(piece == content)
        #expect(wakes.value == 1)

        let second = Gate()
        let stalled = HTTP1BodyReader(try Self.gatedBody(content, stallAt: 0, gate: second)) { Issue.record("a cancelled reader woke the loop") }
        try await second.entered.wait(seconds: 300)
        guard case .waiting = stalled.next() else {
            Issue.record("a piece was handed out while its read was stalled")
            return
        }
        stalled.cancel()
        second.release()
        // (Whether the released read of the cancelled reader wakes the loop is recorded by its
        // `wake` above if it ever does; the read ends on the reader's thread after this test.)
    }

    /// Through one client: uploads whose file reads stall (more of them than the machine has
    /// cores) do not hold up another upload on the same transport (same I/O thread) nor its
    /// reads; released, the stalled uploads complete with their bytes.
    @Test func aStalledReadNeverBlocksAnotherExchange() async throws {
        let content = MultipartStreamingTests.pattern(HTTP1FileBody.chunk * 2 + 5)
        let stalledCount = max(4, ProcessInfo.processInfo.activeProcessorCount + 2)
        let gate = Gate(expected: stalledCount)
        defer { gate.release() }
        let stalledServers = try (0..<stalledCount).map { _ in try UploadCapture() }
        let otherServer = try UploadCapture()
        defer {
            for server in stalledServers { server.stop() }
            otherServer.stop()
        }
        let transport = HTTP1Transport(maxConnectionsPerOrigin: 4, maxResponseBytes: 1 << 20, resourceTimeout: 300)
        func request(_ port: Int) -> URLRequest {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/files")!, timeoutInterval: 300)
            request.httpMethod = "POST"
            return request
        }
        var uploads: [Task<HTTPClient.Response, any Error>] = []
        for server in stalledServers {
            let stalled = try Self.gatedBody(content, stallAt: HTTP1FileBody.chunk, gate: gate)
            uploads.append(Task { try await transport.upload(request(server.port), body: stalled) })
        }
        try await gate.entered.wait(seconds: 300)

        let small = Array("a small file".utf8)
        let url = try MultipartStreamingTests.file(small)
        defer { try? FileManager.default.removeItem(at: url) }
        let other = try HTTP1FileBody(head: [], file: try MultipartStreamingTests.opened(url), tail: [])
        let response = try await transport.upload(request(otherServer.port), body: other)
        #expect(response.status == 200)
        #expect(!gate.isReleased, "the other request completed only once the stalled read ended: the read held the loop")
        #expect(otherServer.captured?.body == small)

        gate.release()
        for (upload, server) in zip(uploads, stalledServers) {
            let uploaded = try await upload.value
            #expect(uploaded.status == 200)
            try await server.done.wait(seconds: 300)
            #expect(server.captured?.body == content)
        }
    }

    /// A read that never comes back is silence: the request timeout ends the upload (`timedOut`),
    /// like a server that stops reading.
    @Test func aReadStalledForGoodEndsAtTheRequestTimeout() async throws {
        let gate = Gate()
        defer { gate.release() }
        let server = try UploadCapture()
        defer { server.stop() }
        let transport = HTTP1Transport(maxConnectionsPerOrigin: 1, maxResponseBytes: 1 << 20, resourceTimeout: 300)
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)/v1/files")!, timeoutInterval: 0.5)
        request.httpMethod = "POST"
        let body = try Self.gatedBody(MultipartStreamingTests.pattern(4096), stallAt: 0, gate: gate)
        do {
            _ = try await transport.upload(request, body: body)
            Issue.record("the upload completed although its file never answered")
        } catch let error as URLError {
            #expect(error.code == .timedOut)
        }
        #expect(!gate.isReleased)
    }

    /// A body with no tail (`upload(_:fromFile:)`, Gemini's resumable upload) that grows while
    /// it is sent fails with its last piece: the longer file is never sent short as complete.
    @Test func aSingleFileThatGrowsWhileSentFails() throws {
        let content = MultipartStreamingTests.pattern(HTTP1FileBody.chunk + 300)
        let url = try MultipartStreamingTests.file(content)
        defer { try? FileManager.default.removeItem(at: url) }
        for body in [try HTTP1FileBody(url), try HTTP1FileBody(head: [], file: try MultipartStreamingTests.opened(url), tail: [])] {
            #expect(body.size == content.count)
            let first = body.piece(at: 0)
            #expect(first.count == HTTP1FileBody.chunk)
            let handle = try FileHandle(forWritingTo: url)
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("more".utf8))
            try handle.close()
            #expect(body.piece(at: first.count).isEmpty, "the last piece must not go out of a file that grew")
            let message = try #require(body.failure?.message)
            #expect(message.contains("grew while it was sent"), "\(message)")
            #expect(message.contains(url.path), "\(message)")
            #expect(truncate(url.path, off_t(content.count)) == 0)
            #expect(MultipartStreamingTests.allPieces(body) == content, "the same size again: whole")
        }
    }

    /// Through the client: the file grows while the request is under way (the server holds its
    /// reading until then): the upload fails saying so, and the server never gets a whole body.
    @Test func aResumableUploadsFileThatGrowsMidSendFailsTheRequest() async throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("upload-grows-\(UUID().uuidString)")
        #expect(FileManager.default.createFile(atPath: url.path, contents: nil))
        defer { try? FileManager.default.removeItem(at: url) }
        let size = 48 << 20  // sparse: far more than the socket buffers take while the server waits
        #expect(truncate(url.path, off_t(size)) == 0)
        let resume = ServerSignal("the file grew")
        let server = try UploadCapture(pause: resume)
        defer {
            resume.raise()
            server.stop()
        }
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)/upload")!, timeoutInterval: 120)
        request.httpMethod = "POST"
        let opened = try MultipartStreamingTests.opened(url)
        let upload = Task { try await HTTPClient().upload(request, opened: opened) }
        try await server.started.wait(seconds: 300)
        #expect(truncate(url.path, off_t(size + 10)) == 0)
        resume.raise()
        do {
            let response = try await upload.value
            Issue.record("the upload succeeded (\(response.status)) although its file grew")
        } catch let failure as OpenedFile.Failure {
            #expect(failure.message.contains("grew while it was sent"), "\(failure.message)")
        }
        try await server.done.wait(seconds: 300)
        let captured = try #require(server.captured)
        #expect(!captured.complete, "the server must not receive a whole body")
        #expect(captured.head.contains("Content-Length: \(size)\r\n"), "\(captured.head)")
    }
}
