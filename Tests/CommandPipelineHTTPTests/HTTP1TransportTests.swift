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

/// The plain-http transport (`Transport/HTTP1/`) against a scripted server on this machine:
/// framing, limits, keep-alive, a server closing idle connections, cancellation, timeouts and
/// connections following concurrency. Every wait is bounded.
@Suite struct HTTP1TransportTests {
    static func request(_ server: ScriptedServer, path: String = "/v1/x", timeout: TimeInterval = 10, headers: [String: String] = [:]) -> URLRequest {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)\(path)")!, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.httpBody = Data(#"{"q":1}"#.utf8)
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        return request
    }

    static func transport(connections: Int = 8, maxBytes: Int = 64 << 20, deadline: TimeInterval = 30) -> HTTP1Transport {
        HTTP1Transport(maxConnectionsPerOrigin: connections, maxResponseBytes: maxBytes, resourceTimeout: deadline)
    }

    static func ok(_ body: String, extra: String = "") -> String {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
    }

    @Test func keepAliveReusesOneConnection() async throws {
        let server = try ScriptedServer { connection in
            while connection.readRequest() != nil { connection.write(Self.ok(#"{"ok":true}"#)) }
        }
        defer { server.stop() }
        let transport = Self.transport()
        for _ in 0..<5 {
            let response = try await transport.send(Self.request(server))
            #expect(response.status == 200)
            #expect(String(decoding: response.body, as: UTF8.self) == #"{"ok":true}"#)
        }
        // Sequential requests reuse the connection. (The answer can reach the caller a moment before
        // its connection is back in the pool, so a busy machine may open one more: never five.)
        #expect(server.accepted <= 2, "\(server.accepted) connections for 5 sequential requests")
        #expect(server.requests.count == 5)
        let head = try #require(server.requests.first)
        #expect(head.hasPrefix("POST /v1/x HTTP/1.1\r\n") && head.contains("Host: 127.0.0.1:\(server.port)\r\n") && head.contains("Content-Length: 7\r\n"))
    }

    @Test func aChunkedBodyInOddPiecesWithExtensionsAndTrailersIsReassembled() async throws {
        let server = try ScriptedServer { connection in
            guard connection.readRequest() != nil else { return }
            for piece in ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", "\r\n5;ext=1\r\nhel", "lo\r\n", "1\r", "\n \r\n", "6\r\nworld!\r\n0\r\nX-Trailer: 1\r\n\r\n"] {
                connection.write(piece)
            }
            _ = connection.readRequest()
        }
        defer { server.stop() }
        let response = try await Self.transport().send(Self.request(server))
        #expect(String(decoding: response.body, as: UTF8.self) == "hello world!")
    }

    @Test func aLyingContentLengthIsAConnectionLostWithTheBytesReceived() async throws {
        let server = try ScriptedServer { connection in
            guard connection.readRequest() != nil else { return }
            connection.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        }
        defer { server.stop() }
        await #expect {
            _ = try await Self.transport().send(Self.request(server))
        } throws: { error in
            guard case .connectionLost(let received, let underlying)? = error as? HTTPClient.Failure else { return false }
            return received == 10 && underlying.code == .networkConnectionLost
        }
    }

    @Test func aClosedConnectionBeforeAnyHeadIsNetworkConnectionLost() async throws {
        let server = try ScriptedServer { connection in _ = connection.readRequest() }
        defer { server.stop() }
        await #expect {
            _ = try await Self.transport().send(Self.request(server))
        } throws: { ($0 as? URLError)?.code == .networkConnectionLost }
    }

    @Test func theBodyCapHoldsForDeclaredAndChunkedBodies() async throws {
        let server = try ScriptedServer { connection in
            while let head = connection.readRequest() {
                if head.contains("/declared") {
                    connection.write("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
                } else {
                    let chunk = String(repeating: "a", count: 600)
                    connection.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n\(chunk)\r\n258\r\n\(chunk)\r\n0\r\n\r\n")
                }
            }
        }
        defer { server.stop() }
        let transport = Self.transport(maxBytes: 1000)
        await #expect {
            _ = try await transport.send(Self.request(server, path: "/declared"))
        } throws: { error in
            if case .bodyTooLarge(1000, 5000)? = error as? HTTPClient.Failure { true } else { false }
        }
        await #expect {
            _ = try await transport.send(Self.request(server, path: "/chunked"))
        } throws: { error in
            if case .bodyTooLarge(1000, nil)? = error as? HTTPClient.Failure { true } else { false }
        }
    }

    @Test func aRedirectIsReturnedNotFollowed() async throws {
        let server = try ScriptedServer { connection in
            while connection.readRequest() != nil {
                connection.write("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n")
            }
        }
        defer { server.stop() }
        let response = try await Self.transport().send(Self.request(server, headers: ["Authorization": "Bearer sk-test"]))
        #expect(response.status == 302)
        #expect(response.headers["location"] == "http://127.0.0.1:1/elsewhere")
        #expect(server.requests.count == 1)
    }

    /// A value with a line break never becomes a second header on the wire (Foundation drops
    /// such a value from `URLRequest`; the serializer refuses one in any case).
    @Test func aHeaderValueWithALineBreakNeverInjectsAHeader() async throws {
        let server = try ScriptedServer { connection in
            while connection.readRequest() != nil { connection.write(Self.ok("ok")) }
        }
        defer { server.stop() }
        do {
            _ = try await Self.transport().send(Self.request(server, headers: ["Authorization": "Bearer sk-test\r\nX-Injected: 1"]))
        } catch {
            guard case .invalidHeader? = error as? HTTPClient.Failure else { Issue.record("\(error)"); return }
        }
        #expect(!server.requests.contains { $0.lowercased().contains("x-injected") })
        #expect(throws: HTTPClient.Failure.self) {
            _ = try HTTP1Transport.serialize(
                method: "POST", url: URL(string: "http://h/")!, host: "h", port: 80, headers: [("Authorization", "Bearer a\r\nX-Injected: 1")], body: nil)
        }
    }

    /// The server closes a kept-alive connection after answering: the next request, not yet
    /// sent, goes out on a fresh connection without an error.
    @Test func anIdleConnectionClosedByTheServerIsReplacedTransparently() async throws {
        let closed = ServerSignal()
        let server = try ScriptedServer { connection in
            guard connection.readRequest() != nil else { return }
            connection.write(Self.ok("first"))
            connection.close()
            closed.raise()
        }
        defer { server.stop() }
        let transport = Self.transport()
        #expect(try await transport.send(Self.request(server)).status == 200)
        try await closed.wait()
        let second = try await transport.send(Self.request(server))
        #expect(String(decoding: second.body, as: UTF8.self) == "first")
        #expect(server.accepted == 2)
    }

    /// A request already sent when the connection drops is not sent again (it may have been
    /// processed): the caller gets the error, the server saw it once.
    @Test func aSentRequestIsNeverResentWhenTheConnectionDrops() async throws {
        let server = try ScriptedServer { connection in
            guard connection.readRequest() != nil else { return }
            connection.write(Self.ok("first"))
            _ = connection.readRequest()  // the second request arrives; the server drops it unanswered
        }
        defer { server.stop() }
        let transport = Self.transport()
        #expect(try await transport.send(Self.request(server)).status == 200)
        await #expect {
            _ = try await transport.send(Self.request(server))
        } throws: { ($0 as? URLError)?.code == .networkConnectionLost }
        #expect(server.requests.count == 2)
        #expect(server.accepted == 1)
    }

    /// Nothing here depends on speed: the request's timeouts (600 s) are far beyond the test, so
    /// only the cancel can end it, and each wait is a generous bound (a full suite on two loaded
    /// cores can keep the test's task from running for minutes), named when it fails.
    @Test func cancellingTheTaskClosesTheConnection() async throws {
        let received = ServerSignal("the server received the request")
        let clientClosed = ServerSignal("the server saw the client close the connection")
        let server = try ScriptedServer { connection in
            guard connection.readRequest() != nil else { return }
            received.raise()
            if connection.waitForClose() { clientClosed.raise() }
        }
        defer { server.stop() }
        let transport = Self.transport(deadline: 600)
        let task = Task { try await transport.send(Self.request(server, timeout: 600)) }
        try await received.wait(seconds: 300)
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        try await clientClosed.wait(seconds: 300)
    }

    /// A task cancelled before its request reaches the loop: the cancel is posted first, the
    /// submit after it (`withTaskCancellationHandler` runs the handler before the operation).
    /// The loop must leave the exchange to its submit, which ends it with `CancellationError`;
    /// ending it at the cancel, before its continuation exists, left the task waiting forever.
    @Test func aCancelThatOvertakesItsSubmitStillEndsTheRequest() async throws {
        let loop = try #require(HTTP1EventLoop(maxConnectionsPerOrigin: 1))
        defer { loop.shutdown() }
        let early = Self.unconnectedExchange()
        loop.cancel(early)
        // A barrier: once the loop has answered this one, it has handled the cancel above.
        let barrier = Self.unconnectedExchange()
        barrier.cancelled.store(true, ordering: .releasing)
        await #expect(throws: CancellationError.self) { try await Self.submit(barrier, to: loop) }
        try #require(!early.finished, "the loop ended an exchange it had not been given (its continuation was not there yet)")
        await #expect(throws: CancellationError.self) { try await Self.submit(early, to: loop) }
    }

    /// Many threads post to the loop while it goes to sleep and wakes (the inbox's `sleeping`
    /// flag and the wake pipe): every request is answered, none waits for a later post. Each
    /// request is cancelled before it is submitted, so the loop answers it from its inbox alone.
    @Test func postsRacingTheLoopGoingToSleepAreNeverLost() async throws {
        let loop = try #require(HTTP1EventLoop(maxConnectionsPerOrigin: 1))
        defer { loop.shutdown() }
        let answered = Tally()
        let done = ServerSignal("every posted request was answered")
        let senders = 16, perSender = 200
        for _ in 0..<senders {
            // Threads of their own, not the cooperative pool: posting must not wait for it.
            Thread.detachNewThread {
                for _ in 0..<perSender {
                    let exchange = Self.unconnectedExchange()
                    exchange.cancelled.store(true, ordering: .releasing)
                    Task {
                        do { _ = try await Self.submit(exchange, to: loop) } catch is CancellationError {} catch {}
                        if answered.add() == senders * perSender { done.raise() }
                    }
                }
            }
        }
        try await done.wait(seconds: 300)
        #expect(answered.value == senders * perSender)
    }

    /// Sockets and the wake pipe are close-on-exec from their creation (one call, no window):
    /// a process spawned meanwhile must not inherit a connection and keep it open.
    @Test func socketsAreCloseOnExecFromTheStart() throws {
        let server = try ScriptedServer { connection in _ = connection.readRequest() }
        defer { server.stop() }
        let address = try #require(Sockets.resolve(host: "127.0.0.1", port: server.port).first)
        let (fd, _) = try Sockets.connect(address)
        defer { Sockets.close(fd) }
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(fd, F_GETFL) & O_NONBLOCK != 0)
        let (r, w) = try #require(Sockets.wakePipe())
        defer { Sockets.close(r); Sockets.close(w) }
        for end in [r, w] {
            #expect(fcntl(end, F_GETFD) & FD_CLOEXEC != 0)
            #expect(fcntl(end, F_GETFL) & O_NONBLOCK != 0)
        }
    }

    /// An exchange to a port nothing listens on, with timeouts far beyond any test.
    static func unconnectedExchange() -> HTTP1Exchange {
        HTTP1Exchange(
            origin: "http://127.0.0.1:9", addresses: [], request: [], isHead: false, idleTimeout: 600, resourceTimeout: 600, maxBodyBytes: 0)
    }

    /// What `HTTP1Transport.send` does, on a given loop.
    static func submit(_ exchange: HTTP1Exchange, to loop: HTTP1EventLoop) async throws -> HTTPClient.Response {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPClient.Response, any Error>) in
            exchange.sink = .collect(continuation)
            loop.submit(exchange)
        }
    }

    @Test func endingAStreamsConsumerClosesTheConnection() async throws {
        let clientClosed = ServerSignal()
        let server = try ScriptedServer { connection in
            guard connection.readRequest() != nil else { return }
            connection.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            connection.write("d\r\ndata: first\n\n\r\n")
            if connection.waitForClose() { clientClosed.raise() }
        }
        defer { server.stop() }
        let response = try await Self.transport().stream(Self.request(server))
        #expect(response.status == 200 && response.headers["content-type"] == "text/event-stream")
        var iterator = response.body.makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first.map { String(decoding: $0, as: UTF8.self) } == "data: first\n\n")
        // The second piece never comes: the consumer gives up, and the connection must close.
        let consumer = Task { for try await _ in response.body {} }
        consumer.cancel()
        _ = await consumer.result
        try await clientClosed.wait()
    }

    /// Like `URLSession.finishTasksAndInvalidate`: dropping the client lets an answer that is
    /// streaming finish; only then does the I/O thread end.
    @Test func aDroppedClientLetsAStreamingAnswerFinish() async throws {
        // The server sends the rest only once the test has read the first piece. Under load
        // (long blocking suites beside this one) reading it can take a while: the idle timeout
        // and the server's wait are generous bounds, not expectations.
        let firstRead = ServerSignal()
        let server = try ScriptedServer { connection in
            guard connection.readRequest() != nil else { return }
            connection.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            guard (try? firstRead.waitBlocking(seconds: 120)) != nil else { return }
            connection.write("6\r\nsecond\r\n0\r\n\r\n")
            _ = connection.readRequest()
        }
        defer { server.stop() }
        var transport: HTTP1Transport? = Self.transport(deadline: 150)
        let response = try await transport!.stream(Self.request(server, timeout: 120))
        transport = nil
        var pieces: [String] = []
        for try await piece in response.body {
            pieces.append(String(decoding: piece, as: UTF8.self))
            firstRead.raise()
        }
        #expect(pieces.joined() == "firstsecond")
    }

    @Test func silenceLongerThanTheRequestTimeoutIsATimeout() async throws {
        let server = try ScriptedServer { connection in
            guard connection.readRequest() != nil else { return }
            _ = connection.waitForClose()
        }
        defer { server.stop() }
        await #expect {
            _ = try await Self.transport().send(Self.request(server, timeout: 0.3))
        } throws: { ($0 as? URLError)?.code == .timedOut }
    }

    @Test func aServerTricklingBytesMeetsTheOverallDeadline() async throws {
        let server = try ScriptedServer { connection in
            guard connection.readRequest() != nil else { return }
            connection.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in 0..<100 {
                guard connection.write("x") else { return }
                usleep(50_000)  // the fixture's pace, not the test's wait
            }
        }
        defer { server.stop() }
        await #expect {
            _ = try await Self.transport(deadline: 0.5).send(Self.request(server, timeout: 10))
        } throws: { error in
            if case .deadlineExceeded? = error as? HTTPClient.Failure { true } else { false }
        }
    }

    @Test func nothingListeningIsCannotConnectToHost() async throws {
        let server = try ScriptedServer { _ in }
        let port = server.port
        server.stop()
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/")!)
        request.httpMethod = "GET"
        await #expect {
            _ = try await Self.transport().send(request)
        } throws: { ($0 as? URLError)?.code == .cannotConnectToHost }
    }

    /// A name is looked up (`localhost`), and every address it has is tried in turn: here the
    /// first refuses the connection (as `::1` does for a server on 127.0.0.1 only).
    @Test func aNameIsResolvedAndEveryAddressTried() async throws {
        let server = try ScriptedServer { connection in
            while connection.readRequest() != nil { connection.write(Self.ok("ok")) }
        }
        defer { server.stop() }
        var request = URLRequest(url: URL(string: "http://localhost:\(server.port)/v1/x")!, timeoutInterval: 10)
        request.httpMethod = "GET"
        let transport = Self.transport()
        #expect(try await transport.send(request).status == 200)
        #expect(server.requests.first?.contains("Host: localhost:\(server.port)\r\n") == true)

        let closed = try ScriptedServer { _ in }
        closed.stop()
        let refused = Sockets.resolve(host: "127.0.0.1", port: closed.port)
        let good = Sockets.resolve(host: "127.0.0.1", port: server.port)
        transport.remember(refused + good, host: "several.test", port: server.port)
        let named = URLRequest(url: URL(string: "http://several.test:\(server.port)/")!, timeoutInterval: 10)
        #expect(try await transport.send(named).status == 200)
        transport.remember(refused, host: "refused.test", port: server.port)
        await #expect {
            _ = try await transport.send(URLRequest(url: URL(string: "http://refused.test:\(server.port)/")!, timeoutInterval: 10))
        } throws: { ($0 as? URLError)?.code == .cannotConnectToHost }
    }

    /// At most `maxConnectionsPerOrigin` connections: ten requests over four, never more in
    /// flight at once, the rest waiting their turn and reusing the four.
    @Test func connectionsNeverExceedThePoolAndQueuedRequestsReuseThem() async throws {
        let gate = InFlightGate(target: 4)
        let server = try ScriptedServer { connection in
            while connection.readRequest() != nil {
                gate.hold()
                connection.write(Self.ok("ok"))
                gate.leave()
            }
        }
        defer { server.stop() }
        let transport = Self.transport(connections: 4)
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<10 { group.addTask { try await transport.send(Self.request(server)).status } }
            for try await status in group { #expect(status == 200) }
        }
        #expect(gate.maximum == 4)
        #expect(server.accepted == 4)
    }

    /// The pool follows the concurrency it is given: 256 requests are all at the server at once
    /// (the server holds each until it has 256, or 20 s pass).
    @Test func twoHundredFiftySixRequestsAreAllInFlightAtOnce() async throws {
        let gate = InFlightGate(target: 256)
        let server = try ScriptedServer { connection in
            while connection.readRequest() != nil {
                gate.hold(seconds: 20)
                connection.write(Self.ok("ok"))
                gate.leave()
            }
        }
        defer { server.stop() }
        let transport = Self.transport(connections: 256)
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<256 { group.addTask { try await transport.send(Self.request(server, timeout: 60)).status } }
            for try await status in group { #expect(status == 200) }
        }
        #expect(gate.maximum == 256)
    }
}

/// The response parser alone: any split of the bytes, every framing, hostile numbers.
@Suite struct HTTP1ResponseParserTests {
    struct Parsed {
        var status = 0
        var headers: [String: String] = [:]
        var body: [UInt8] = []
        var ended = false
        var keepAlive = true
    }

    static func parse(_ text: String, pieceSize: Int = .max, maxBody: Int = 1 << 20, isHead: Bool = false) throws -> Parsed {
        var parser = HTTP1ResponseParser(maxBodyBytes: maxBody, requestIsHead: isHead)
        var parsed = Parsed()
        let bytes = Array(text.utf8)
        var index = 0
        while index < bytes.count {
            let end = min(bytes.count, index + min(pieceSize, bytes.count))
            try bytes[index..<end].withUnsafeBufferPointer { piece in
                try parser.consume(piece) { event in
                    switch event {
                    case .head(let status, let headers): (parsed.status, parsed.headers) = (status, headers)
                    case .body(let bytes): parsed.body.append(contentsOf: bytes)
                    case .end: parsed.ended = true
                    }
                }
            }
            index = end
        }
        if !parsed.ended {
            try parser.endOfInput { event in
                if case .end = event { parsed.ended = true }
            }
        }
        parsed.keepAlive = parser.keepAlive
        return parsed
    }

    static let chunked = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nSet-Cookie: a\r\nset-cookie: b\r\n\r\n"
        + "3\r\nabc\r\n10;name=value\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n"

    @Test(arguments: [1, 2, 3, 7, 64, Int.max])
    func anySplitGivesTheSameResponse(pieceSize: Int) throws {
        let parsed = try Self.parse(Self.chunked, pieceSize: pieceSize)
        #expect(parsed.status == 200 && parsed.ended && parsed.keepAlive)
        #expect(String(decoding: parsed.body, as: UTF8.self) == "abc0123456789abcdef")
        #expect(parsed.headers["set-cookie"] == "a, b")
        let length = try Self.parse("HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello", pieceSize: pieceSize)
        #expect(length.status == 201 && length.body == Array("hello".utf8) && length.ended)
    }

    @Test func connectionRulesFollowTheVersion() throws {
        #expect(try Self.parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keepAlive == false)
        #expect(try Self.parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keepAlive == false)
        #expect(try Self.parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n").keepAlive == true)
        // No length and no chunking: the close ends the body, so the connection cannot be reused.
        let untilClose = try Self.parse("HTTP/1.1 200 OK\r\n\r\nall of it")
        #expect(untilClose.body == Array("all of it".utf8) && untilClose.ended && !untilClose.keepAlive)
        // Bytes after the end: the framing cannot be trusted for another request.
        #expect(try Self.parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA").keepAlive == false)
        // HEAD, 204 and 304 have no body whatever they declare.
        #expect(try Self.parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", isHead: true).ended)
        #expect(try Self.parse("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n").ended)
    }

    @Test(arguments: [
        "HTTP/1.1 20 OK\r\n\r\n", "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "HTTP/1.1 200 OK\r\n folded\r\n\r\n", "HTTP/1.1 101 Switching\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    ])
    func malformedOrTruncatedResponsesFailWithoutTrapping(text: String) {
        #expect(throws: HTTP1ResponseParser.Failure.self) { try Self.parse(text) }
    }

    @Test func limitsAreCheckedWhereTheNumbersEnter() throws {
        #expect(throws: HTTP1ResponseParser.Failure.bodyTooLarge(declared: 2000)) {
            try Self.parse("HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", maxBody: 1000)
        }
        #expect(throws: HTTP1ResponseParser.Failure.bodyTooLarge(declared: nil)) {
            try Self.parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n", maxBody: 1000)
        }
        #expect(throws: HTTP1ResponseParser.Failure.bodyTooLarge(declared: nil)) {
            try Self.parse("HTTP/1.1 200 OK\r\n\r\n" + String(repeating: "x", count: 1001), maxBody: 1000)
        }
        #expect(throws: HTTP1ResponseParser.Failure.headTooLarge) {
            try Self.parse("HTTP/1.1 200 OK\r\nX: " + String(repeating: "x", count: 70_000) + "\r\n\r\n")
        }
        #expect(try Self.parse("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + String(repeating: "x", count: 1000), maxBody: 1000).ended)
    }
}

/// The request as it goes on the wire.
@Suite struct HTTP1RequestTests {
    @Test(arguments: [
        ("http://h:8080/v1/chat/completions", "/v1/chat/completions"), ("http://h", "/"), ("http://h:1?x=1", "/?x=1"),
        ("http://h/a%20b?q=%2F#frag", "/a%20b?q=%2F"), ("http://[::1]:9/p", "/p"),
    ])
    func theTargetIsPathAndQueryWithoutTheFragment(url: String, target: String) {
        #expect(HTTP1Transport.requestTarget(url) == target)
    }

    @Test func framingHeadersAreTheTransportsOwn() throws {
        let bytes = try HTTP1Transport.serialize(
            method: "POST", url: URL(string: "http://[::1]:8080/v1?a=b")!, host: "::1", port: 8080,
            headers: [("Content-Length", "999"), ("Connection", "close"), ("Transfer-Encoding", "chunked"), ("Accept-Encoding", "gzip"), ("X-Key", "v")], body: Data("abc".utf8))
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text == "POST /v1?a=b HTTP/1.1\r\nHost: [::1]:8080\r\nX-Key: v\r\nAccept: */*\r\nUser-Agent: CommandPipeline\r\nAccept-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc")
        let get = try HTTP1Transport.serialize(method: "GET", url: URL(string: "http://h/")!, host: "h", port: 80, headers: [], body: nil)
        #expect(String(decoding: get, as: UTF8.self) == "GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nUser-Agent: CommandPipeline\r\nAccept-Encoding: identity\r\n\r\n")
        #expect(throws: HTTPClient.Failure.self) {
            try HTTP1Transport.serialize(method: "GET", url: URL(string: "http://h/")!, host: "h", port: 80, headers: [("Bad Name", "v")], body: nil)
        }
    }
}

// MARK: - A scripted server

/// A TCP server on 127.0.0.1 with blocking sockets, one thread per connection, each handled by
/// `handler`. Reads time out after 10 s so no fixture outlives a broken test for long.
final class ScriptedServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let state = Mutex<(accepted: Int, requests: [String], stopped: Bool)>((0, [], false))
    var accepted: Int { state.withLock { $0.accepted } }
    var requests: [String] { state.withLock { $0.requests } }

    init(handler: @escaping @Sendable (ScriptedConnection) -> Void) throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 1024) == 0 else { throw URLError(.cannotConnectToHost) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = fd
        let thread = Thread { [self] in
            // Only this thread closes the listener: closed from `stop()`, its number could be
            // reused by another test's socket before this thread reaches `accept`.
            defer { _ = close(fd) }
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                if state.withLock({ $0.stopped }) {
                    _ = close(client)
                    return
                }
                state.withLock { $0.accepted += 1 }
                let connection = ScriptedConnection(fd: client) { [self] head in state.withLock { $0.requests.append(head) } }
                Thread {
                    handler(connection)
                    connection.close()
                }.start()
            }
        }
        thread.start()
    }

    func stop() {
        state.withLock { $0.stopped = true }
        shutdown(listener, Int32(SHUT_RDWR))
    }
}

final class ScriptedConnection: @unchecked Sendable {
    private let fd: Int32
    private let closed = Mutex(false)
    private var buffer: [UInt8] = []
    private let record: @Sendable (String) -> Void

    init(fd: Int32, record: @escaping @Sendable (String) -> Void) {
        self.fd = fd
        self.record = record
        // Generous: on a loaded two-core machine the test's own task can be starved for tens of
        // seconds between two requests; the server must not give up on the client first.
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #if canImport(Darwin)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &yes, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    /// The next request's head (its body, by Content-Length, is read and dropped); nil at the end.
    func readRequest() -> String? {
        while true {
            if let end = buffer.firstRange(of: [13, 10, 13, 10]) {
                let head = String(decoding: buffer[..<end.upperBound], as: UTF8.self)
                var length = 0
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
                guard fill(end.upperBound + length) else { return nil }
                buffer.removeFirst(end.upperBound + length)
                record(head)
                return head
            }
            guard fill(buffer.count + 1) else { return nil }
        }
    }

    private func fill(_ count: Int) -> Bool {
        var scratch = [UInt8](repeating: 0, count: 65_536)
        while buffer.count < count {
            let n = recv(fd, &scratch, scratch.count, 0)
            if n <= 0 { return false }
            buffer.append(contentsOf: scratch[0..<n])
        }
        return true
    }

    /// Waits (at most 120 s) until the client closes; true when it did.
    func waitForClose() -> Bool {
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &scratch, scratch.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    @discardableResult
    func write(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            #if canImport(Glibc)
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            #else
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            #endif
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    func close() {
        let first = closed.withLock { closed -> Bool in
            defer { closed = true }
            return !closed
        }
        #if canImport(Glibc)
        if first { _ = Glibc.close(fd) }
        #else
        if first { _ = Darwin.close(fd) }
        #endif
    }
}

/// Raised by one side (a server thread or the test), awaited by the other, at most `seconds`.
/// A semaphore, not a task: a server thread's wait must not need the cooperative pool, which
/// blocking tests running beside this one can keep busy — for many seconds in a full run on two
/// cores, so the default bound is generous (it is a bound, not an expectation).
final class ServerSignal: Sendable {
    struct NotRaised: Error, CustomStringConvertible {
        var description: String
    }
    private let raised = DispatchSemaphore(value: 0)
    /// What the signal says when raised, for the failure when it was not.
    let name: String

    init(_ name: String = "the signal") { self.name = name }

    /// Once is enough: every later wait returns at once.
    func raise() { raised.signal() }

    /// For a server thread: blocks until raised (at most `seconds`).
    func waitBlocking(seconds: Double = 60) throws {
        guard raised.wait(timeout: .now() + seconds) == .success else { throw NotRaised(description: "not within \(seconds) s: \(name)") }
        raised.signal()   // stays raised for any other waiter
    }

    /// For the test: waits until raised (at most `seconds`) on a thread of its own.
    func wait(seconds: Double = 60) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread { [self] in continuation.resume(with: Result { try waitBlocking(seconds: seconds) }) }
        }
    }
}

/// A count shared between threads.
final class Tally: Sendable {
    private let count = Atomic<Int>(0)
    /// Adds one; the new count.
    func add() -> Int { count.add(1, ordering: .acquiringAndReleasing).newValue }
    var value: Int { count.load(ordering: .acquiring) }
}

/// Counts requests the server holds at once; each is held until `target` are in flight (or
/// the bounded wait passes), so the maximum shows how many the client let through.
final class InFlightGate: Sendable {
    private let state = Mutex<(now: Int, maximum: Int)>((0, 0))
    private let condition = NSCondition()
    let target: Int
    init(target: Int) { self.target = target }
    var maximum: Int { state.withLock { $0.maximum } }

    func hold(seconds: Double = 5) {
        state.withLock {
            $0.now += 1
            $0.maximum = max($0.maximum, $0.now)
        }
        condition.lock()
        condition.broadcast()
        let end = Date().addingTimeInterval(seconds)
        while state.withLock({ $0.maximum }) < target && condition.wait(until: end) {}
        condition.unlock()
    }

    func leave() { state.withLock { $0.now -= 1 } }
}
