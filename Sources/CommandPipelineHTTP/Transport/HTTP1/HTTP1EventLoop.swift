import CommandPipeline
import Dispatch
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One request on its way: what to send, where, its limits, and whom to tell.
/// Built by the caller, then owned by the event loop's thread (handed over through the inbox).
final class HTTP1Exchange: @unchecked Sendable {
    enum Sink {
        case collect(CheckedContinuation<HTTPClient.Response, any Error>)
        case stream(head: CheckedContinuation<(Int, [String: String]), any Error>, body: AsyncThrowingStream<Data, any Error>.Continuation)
    }

    let origin: String
    let addresses: [SocketAddress]
    let request: [UInt8]
    let isHead: Bool
    let idleTimeout: UInt64
    let deadline: UInt64
    let resourceSeconds: TimeInterval
    let maxBodyBytes: Int
    /// Set for `https://`: the connection speaks TLS to this endpoint.
    let tls: TLSEndpoint?
    /// An upload's body, sent from its file after `request` (the head).
    let fileBody: HTTP1FileBody?
    /// Set from any thread when the awaiting task is cancelled; the loop checks it on arrival.
    let cancelled = Atomic<Bool>(false)
    var sink: Sink?

    // The loop's thread only, from here on.
    /// The loop has taken the exchange's `submit`. A `cancel` that overtakes it (the task was
    /// cancelled before the request reached the loop, even before `sink` was set) is left to
    /// the `submit`, which sees `cancelled`: ending it earlier would finish an exchange whose
    /// continuation is not there yet, and the awaiting task would never resume.
    var submitted = false
    var finished = false
    var lastActivity: UInt64
    var connection: HTTP1Connection?
    var status = 0
    var headers: [String: String] = [:]
    var body = Data()
    var headDelivered = false
    /// The head's `Content-Encoding` when it is refused (`HTTPClient.refusedEncoding`).
    var refusedEncoding: String?

    init(
        origin: String, addresses: [SocketAddress], request: [UInt8], isHead: Bool, idleTimeout: TimeInterval, resourceTimeout: TimeInterval,
        maxBodyBytes: Int, tls: TLSEndpoint? = nil, fileBody: HTTP1FileBody? = nil
    ) {
        self.tls = tls
        self.fileBody = fileBody
        self.origin = origin
        self.addresses = addresses
        self.request = request
        self.isHead = isHead
        let now = HTTP1EventLoop.now()
        self.idleTimeout = HTTP1EventLoop.nanoseconds(idleTimeout)
        self.deadline = now &+ HTTP1EventLoop.nanoseconds(resourceTimeout)
        self.resourceSeconds = resourceTimeout
        self.maxBodyBytes = maxBodyBytes
        lastActivity = now
    }
}

/// A connection to one origin (the loop's thread only).
final class HTTP1Connection {
    /// `handshaking`: connected, TLS not yet established (nothing of the request is written).
    enum State { case connecting, handshaking, active, idle, closed }
    var fd: Int32
    /// The TLS session of an `https://` connection, made once the socket is connected.
    var tls: TLSSession?
    let origin: String
    var state: State
    var exchange: HTTP1Exchange?
    var addressIndex = 0
    var out: [UInt8] = []
    var written = 0
    /// The exchange's file body, its reader (off this thread), and how far it has been taken into `out`.
    var fileBody: HTTP1FileBody?
    var reader: HTTP1BodyReader?
    var fileOffset = 0
    /// `out` holds a piece of the file body (given back to the reader once written).
    var outIsPiece = false
    /// The next piece is still being read: the socket is not polled for writing meanwhile.
    var waitingForBody = false
    /// Whether any byte of the current request left (else it may go out again on a fresh connection).
    var sentAny = false

    /// Request bytes still to go: in `out`, or in the file body.
    var requestPending: Bool { written < out.count || fileOffset < (fileBody?.size ?? 0) }
    var parser = HTTP1ResponseParser(maxBodyBytes: 0)
    /// Responses completed on this connection (a reused connection's first write may meet a close).
    var served = 0
    var idleSince: UInt64 = 0
    /// When the connection was opened (the first handshake to an origin times the wait for its ticket).
    let openedAt = HTTP1EventLoop.now()
    /// Connected, its TLS handshake not begun: waiting for the origin's first handshake to
    /// yield a session to resume (`HTTP1EventLoop.Resumption`).
    var heldForResumption = false

    init(fd: Int32, origin: String, state: State) {
        self.fd = fd
        self.origin = origin
        self.state = state
    }
}

/// The HTTP/1.1 client's one I/O thread: non-blocking sockets multiplexed with `poll(2)`,
/// a keep-alive pool per origin of at most `maxConnectionsPerOrigin` connections, requests
/// beyond it queued in order. Callers hand requests over through a locked inbox and a wake
/// pipe; the loop answers by resuming their continuations. Everything else it owns alone.
final class HTTP1EventLoop: @unchecked Sendable {
    private enum Op {
        case submit(HTTP1Exchange)
        case cancel(HTTP1Exchange)
        /// The exchange's upload reader has the piece the loop waited for (or failed).
        case bodyReady(HTTP1Exchange)
        case shutdown
    }

    private final class Pool {
        var open = 0
        var idle: [HTTP1Connection] = []
        var waiting: [HTTP1Exchange] = []
        var waitingHead = 0
    }

    private struct Inbox {
        var ops: [Op] = []
        var sleeping = false
    }

    /// TLS session resumption for one origin (ADR 0007, "Session resumption"). The first
    /// connection that needs a handshake while no session is saved makes a full one (the
    /// probe); connections opened meanwhile connect but hold their handshake until the probe
    /// yields a session (a TLS 1.2 handshake's end, a TLS 1.3 ticket read after it), then all
    /// resume it: no certificate is sent, parsed or verified again, a fraction of the CPU of a
    /// full handshake on both sides. They hold no longer than four times what the probe's
    /// connect and handshake took (50 ms to 1 s), counted from its end (a server that gives no
    /// session costs that wait once per origin), and go ahead at once when the probe fails or
    /// closes.
    private final class Resumption {
        var session: TLSResumption?
        var probe: HTTP1Connection?
        var held: [HTTP1Connection] = []
        /// Held handshakes start, with or without a session, at the latest at this time.
        var releaseAt = UInt64.max
        /// The server gave no session within the wait: handshakes are no longer held.
        var noSession = false
    }

    let maxConnectionsPerOrigin: Int
    /// An idle connection is closed after this long unused.
    static let idleConnectionLifetime: UInt64 = 60_000_000_000
    private let inbox = Mutex(Inbox())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    // The loop's thread only.
    private var pools: [String: Pool] = [:]
    /// Per `https://` origin (the pool's key: scheme, host, port), on this client's one TLS context.
    private var resumptions: [String: Resumption] = [:]
    private var connections: [HTTP1Connection] = []
    private var running = true
    /// Shut down: finish what is in flight, then stop.
    private var draining = false
    private let readBuffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 64 * 1024)

    init?(maxConnectionsPerOrigin: Int) {
        guard let (r, w) = Sockets.wakePipe() else { return nil }
        wakeRead = r
        wakeWrite = w
        self.maxConnectionsPerOrigin = max(1, maxConnectionsPerOrigin)
        let thread = Thread { [self] in run() }
        thread.name = "CommandPipeline HTTP/1.1"
        thread.start()
    }

    deinit {
        readBuffer.deallocate()
        Sockets.close(wakeRead)
        Sockets.close(wakeWrite)
    }

    func submit(_ exchange: HTTP1Exchange) { post(.submit(exchange)) }

    func cancel(_ exchange: HTTP1Exchange) {
        exchange.cancelled.store(true, ordering: .releasing)
        post(.cancel(exchange))
    }

    /// Lets what is in flight finish (like `URLSession.finishTasksAndInvalidate`), closes
    /// connections as they fall idle, then ends the thread.
    func shutdown() { post(.shutdown) }

    private func post(_ op: Op) {
        let wake = inbox.withLock { inbox -> Bool in
            inbox.ops.append(op)
            defer { inbox.sleeping = false }
            return inbox.sleeping
        }
        if wake {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    static func nanoseconds(_ seconds: TimeInterval) -> UInt64 {
        guard seconds.isFinite, seconds > 0 else { return seconds > 0 ? UInt64(1e18) : 0 }
        return UInt64(min(seconds, 1e9) * 1e9)
    }

    // MARK: The loop

    private func run() {
        Self.blockSIGPIPE()
        var fds: [pollfd] = []
        var polled: [HTTP1Connection] = []
        while running {
            let ops = inbox.withLock { inbox -> [Op] in
                if inbox.ops.isEmpty {
                    inbox.sleeping = true
                    return []
                }
                let ops = inbox.ops
                inbox.ops.removeAll(keepingCapacity: true)
                return ops
            }
            for op in ops { handle(op) }
            if draining && !hasWork() { running = false }
            guard running else { break }
            if !ops.isEmpty {
                // More may have arrived while handling these: look again before sleeping.
                continue
            }
            let now = Self.now()
            let timeout = expireAndNextTimeout(now)
            fds.removeAll(keepingCapacity: true)
            polled.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeRead, events: Sockets.pollIn, revents: 0))
            for connection in connections where connection.state != .closed {
                var events = Sockets.pollIn
                if connection.state == .connecting || (connection.requestPending && !connection.waitingForBody) || connection.tls?.wantsWrite == true {
                    events |= Sockets.pollOut
                }
                fds.append(pollfd(fd: connection.fd, events: events, revents: 0))
                polled.append(connection)
            }
            let ready = Sockets.poll(&fds, timeoutMilliseconds: timeout)
            inbox.withLock { $0.sleeping = false }
            if ready > 0 {
                if fds[0].revents != 0 { drainWakePipe() }
                for (index, connection) in polled.enumerated() {
                    let revents = fds[index + 1].revents
                    if revents != 0 && connection.state != .closed { service(connection, revents) }
                }
            }
            if connections.contains(where: { $0.state == .closed }) { connections.removeAll { $0.state == .closed } }
        }
        for connection in connections where connection.state != .closed {
            if let exchange = connection.exchange { fail(exchange, CancellationError()) }
            close(connection)
        }
        for pool in pools.values {
            for exchange in pool.waiting[pool.waitingHead...] where !exchange.finished { fail(exchange, CancellationError()) }
        }
        pools.removeAll()
        connections.removeAll()
    }

    /// OpenSSL writes to its socket with `write(2)`, which raises `SIGPIPE` on a connection the
    /// peer closed (`MSG_NOSIGNAL` is only for our own `send`). Blocked on this thread, the
    /// signal stays pending here and the write fails with `EPIPE` instead of ending the process.
    private static func blockSIGPIPE() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    private func drainWakePipe() {
        var scratch = [UInt8](repeating: 0, count: 256)
        while read(wakeRead, &scratch, scratch.count) > 0 {}
    }

    private func handle(_ op: Op) {
        switch op {
        case .submit(let exchange):
            exchange.submitted = true
            if exchange.cancelled.load(ordering: .acquiring) {
                fail(exchange, CancellationError())
            } else {
                dispatch(exchange)
            }
        case .cancel(let exchange):
            // Not submitted yet: its `submit` comes later in the inbox and sees `cancelled`.
            guard exchange.submitted, !exchange.finished else { return }
            if let connection = exchange.connection { close(connection) }
            fail(exchange, CancellationError())
        case .bodyReady(let exchange):
            guard !exchange.finished, let connection = exchange.connection, connection.exchange === exchange, connection.state == .active else { return }
            connection.waitingForBody = false
            flush(connection)
        case .shutdown:
            draining = true
            for connection in connections where connection.state == .idle { close(connection) }
        }
    }

    private func hasWork() -> Bool {
        connections.contains { $0.state == .active || $0.state == .connecting || $0.state == .handshaking }
            || pools.values.contains { pool in pool.waiting[pool.waitingHead...].contains { !$0.finished } }
    }

    private func pool(_ origin: String) -> Pool {
        if let pool = pools[origin] { return pool }
        let pool = Pool()
        pools[origin] = pool
        return pool
    }

    /// An idle connection, a new one, or the queue.
    private func dispatch(_ exchange: HTTP1Exchange) {
        let pool = pool(exchange.origin)
        while let connection = pool.idle.popLast() {
            // A server may close an idle connection at any time; a close already here is seen
            // now, before anything is sent, and the request takes another connection.
            guard isOpenAndQuiet(connection) else {
                close(connection)
                continue
            }
            start(exchange, on: connection)
            return
        }
        if pool.open < maxConnectionsPerOrigin {
            open(for: exchange, in: pool)
        } else {
            pool.waiting.append(exchange)
        }
    }

    private func open(for exchange: HTTP1Exchange, in pool: Pool, addressIndex: Int = 0) {
        guard addressIndex < exchange.addresses.count else {
            fail(exchange, URLError(.cannotConnectToHost))
            return
        }
        do {
            let (fd, inProgress) = try Sockets.connect(exchange.addresses[addressIndex])
            pool.open += 1
            let connection = HTTP1Connection(fd: fd, origin: exchange.origin, state: .connecting)
            connection.addressIndex = addressIndex
            connections.append(connection)
            connection.exchange = exchange
            exchange.connection = connection
            if !inProgress { connected(connection, exchange) }
        } catch {
            if Self.isOutOfDescriptors(error.code) && pool.open > 0 {
                // No descriptor for a socket now: wait for one of this origin's connections to
                // close or fall idle (its slot then goes to the oldest waiting request).
                pool.waiting.append(exchange)
            } else if addressIndex + 1 < exchange.addresses.count {
                open(for: exchange, in: pool, addressIndex: addressIndex + 1)
            } else {
                fail(exchange, Self.connectError(error.code))
            }
        }
    }

    static func isOutOfDescriptors(_ code: Int32) -> Bool { code == EMFILE || code == ENFILE }

    static func connectError(_ code: Int32) -> URLError {
        switch code {
        case ETIMEDOUT: URLError(.timedOut)
        case EMFILE, ENFILE, ENOBUFS, ENOMEM: URLError(.resourceUnavailable)
        default: URLError(.cannotConnectToHost)
        }
    }

    /// The socket is connected: the request goes out now, or, for `https://`, once TLS is up.
    private func connected(_ connection: HTTP1Connection, _ exchange: HTTP1Exchange) {
        guard let endpoint = exchange.tls else { return start(exchange, on: connection) }
        guard let session = endpoint.context.session(fd: connection.fd, host: endpoint.host) else {
            close(connection)
            exchange.connection = nil
            return fail(
                exchange,
                HTTPClient.Failure.tls(.init(host: endpoint.host, stage: .setup, reason: "OpenSSL could not make a session (out of memory?)", retryable: true)))
        }
        connection.tls = session
        connection.state = .handshaking
        let resumption = resumption(connection.origin)
        if let saved = resumption.session {
            session.offer(saved)
        } else if resumption.probe == nil || resumption.noSession {
            if !resumption.noSession { resumption.probe = connection }
        } else {
            connection.heldForResumption = true
            resumption.held.append(connection)
            return
        }
        handshake(connection)
    }

    private func resumption(_ origin: String) -> Resumption {
        if let resumption = resumptions[origin] { return resumption }
        let resumption = Resumption()
        resumptions[origin] = resumption
        return resumption
    }

    /// Saves a session `connection`'s server newly offered for resumption, and starts the
    /// handshakes held for one.
    private func harvestSession(_ connection: HTTP1Connection) {
        guard let session = connection.tls, let saved = session.newResumableSession() else { return }
        let resumption = resumption(connection.origin)
        resumption.session = saved
        resumption.noSession = false
        releaseHeld(resumption)
    }

    /// Starts the held handshakes: resuming the saved session if there is one, else full ones.
    private func releaseHeld(_ resumption: Resumption) {
        resumption.probe = nil
        resumption.releaseAt = .max
        let held = resumption.held
        resumption.held = []
        for connection in held where connection.state == .handshaking && connection.heldForResumption {
            connection.heldForResumption = false
            if let saved = resumption.session { connection.tls?.offer(saved) }
            handshake(connection)
        }
    }

    /// Takes the TLS handshake on; on success the request goes out on the connection.
    private func handshake(_ connection: HTTP1Connection) {
        guard let exchange = connection.exchange, let session = connection.tls else { return close(connection) }
        switch session.handshake() {
        case .done:
            if let resumption = resumptions[connection.origin], resumption.probe === connection {
                // Wait for the ticket (TLS 1.3 sends it once the server has read our Finished,
                // behind whatever else it serves: the burst's other connections) no longer than
                // four times what connecting and the handshake took (at least 50 ms, at most
                // 1 s): it scales with the link and the load.
                let now = Self.now()
                let took = now - min(now, connection.openedAt)
                resumption.releaseAt = now &+ max(min(took, 250_000_000) * 4, 50_000_000)
            }
            harvestSession(connection)
            start(exchange, on: connection)
        case .waiting:
            return
        case .failed(let failure):
            // A failed handshake (a fatal alert, a certificate that no longer verifies, a refused
            // resumption) ends the origin's saved session (RFC 5246 §7.2.2): the next connection
            // makes a full, verified handshake.
            resumptions[connection.origin]?.session = nil
            close(connection)
            exchange.connection = nil
            fail(exchange, HTTPClient.Failure.tls(failure))
        }
    }

    /// Whether a kept-alive connection can carry another request: the peer has neither closed
    /// it nor sent bytes nobody asked for (TLS records the server sends on its own, such as
    /// session tickets, are read and dropped).
    private func isOpenAndQuiet(_ connection: HTTP1Connection) -> Bool {
        guard let session = connection.tls else { return Sockets.isOpenAndQuiet(connection.fd) }
        return session.isOpenAndQuiet(scratch: readBuffer)
    }

    /// Bytes written, 0 when the socket would block, or -errno.
    private func writeSome(_ connection: HTTP1Connection, _ bytes: UnsafeRawBufferPointer) -> Int {
        if let session = connection.tls { return session.write(bytes) }
        return Sockets.send(connection.fd, bytes)
    }

    /// Bytes read (0 at end of stream), nil when the socket would block, or -errno.
    private func readSome(_ connection: HTTP1Connection) -> Int? {
        if let session = connection.tls { return session.read(into: readBuffer) }
        return Sockets.receive(connection.fd, into: readBuffer)
    }

    private func start(_ exchange: HTTP1Exchange, on connection: HTTP1Connection) {
        connection.state = .active
        connection.exchange = exchange
        exchange.connection = connection
        exchange.lastActivity = Self.now()
        connection.out = exchange.request
        connection.written = 0
        connection.fileBody = exchange.fileBody
        connection.fileOffset = 0
        connection.outIsPiece = false
        connection.waitingForBody = false
        connection.reader?.cancel()
        connection.reader = exchange.fileBody.map { body in
            HTTP1BodyReader(body) { [weak self, weak exchange] in
                if let self, let exchange { post(.bodyReady(exchange)) }
            }
        }
        connection.sentAny = false
        connection.parser = HTTP1ResponseParser(maxBodyBytes: exchange.maxBodyBytes, requestIsHead: exchange.isHead)
        flush(connection)
    }

    /// Writes what the socket takes now; a file body goes piece after piece as its reader (off
    /// this thread) has them: none ready, the loop waits for its `bodyReady`, never for the file.
    private func flush(_ connection: HTTP1Connection) {
        while connection.requestPending {
            if connection.written == connection.out.count, let reader = connection.reader {
                if connection.outIsPiece {
                    var written: [UInt8] = []
                    swap(&written, &connection.out)
                    reader.recycle(written)
                }
                connection.outIsPiece = false
                connection.written = 0
                switch reader.next() {
                case .piece(let piece):
                    connection.out = piece
                    connection.outIsPiece = true
                    connection.fileOffset += piece.count
                case .waiting:
                    connection.out = []
                    connection.waitingForBody = true
                    return
                case .failed(let failure):
                    // The file ended before its size at opening, grew, or cannot be read: the
                    // request cannot be completed as announced.
                    guard let exchange = connection.exchange else { return close(connection) }
                    close(connection)
                    return fail(exchange, failure)
                }
            }
            let n = connection.out.withUnsafeBytes { raw in
                writeSome(connection, UnsafeRawBufferPointer(rebasing: raw[connection.written...]))
            }
            if n > 0 {
                connection.written += n
                connection.sentAny = true
                connection.exchange?.lastActivity = Self.now()
            } else if n == 0 {
                return
            } else {
                broken(connection, error: Int32(-n), whileWriting: true)
                return
            }
        }
    }

    private func service(_ connection: HTTP1Connection, _ revents: Int16) {
        switch connection.state {
        case .connecting:
            let error = Sockets.pendingError(connection.fd)
            if error != 0 || revents & (Sockets.pollOut | Sockets.pollIn) == 0 {
                // Refused (or unreachable): the next address, else the exchange fails.
                guard let exchange = connection.exchange else { return close(connection) }
                close(connection)
                exchange.connection = nil
                if connection.addressIndex + 1 < exchange.addresses.count {
                    open(for: exchange, in: pool(exchange.origin), addressIndex: connection.addressIndex + 1)
                } else {
                    fail(exchange, Self.connectError(error))
                }
                return
            }
            guard let exchange = connection.exchange else { return close(connection) }
            connected(connection, exchange)
        case .handshaking:
            // The server answered (or the socket took bytes): that is activity, for the idle timeout.
            connection.exchange?.lastActivity = Self.now()
            // A held connection the server speaks on or closes starts its handshake now (full).
            connection.heldForResumption = false
            handshake(connection)
        case .idle:
            // The server closed it (or sent what nobody asked for): it will carry nothing more.
            // (A TLS connection may have received a session ticket: read, dropped, still usable.)
            if !isOpenAndQuiet(connection) { close(connection) } else if connection.tls != nil { harvestSession(connection) }
        case .active:
            if revents & Sockets.pollOut != 0 || (revents & Sockets.pollBroken != 0 && connection.requestPending) {
                flush(connection)
                guard connection.state == .active else { return }
            }
            // TLS may need the socket writable to go on reading (a key update): it is, now.
            let tlsReadWaitsForWrite = connection.tls?.wantsWrite == true && !connection.requestPending
            if revents & (Sockets.pollIn | Sockets.pollBroken) != 0 || (tlsReadWaitsForWrite && revents & Sockets.pollOut != 0) {
                receive(connection)
            }
        case .closed:
            return
        }
    }

    private func receive(_ connection: HTTP1Connection) {
        while connection.state == .active, let exchange = connection.exchange {
            let read = readSome(connection)
            // A TLS 1.3 ticket is read before the response or with it: saved now, before the
            // response may close the connection.
            if connection.tls != nil { harvestSession(connection) }
            guard let n = read else { return }
            if n <= 0 {
                broken(connection, error: n == 0 ? 0 : Int32(-n), whileWriting: false)
                return
            }
            exchange.lastActivity = Self.now()
            do {
                try connection.parser.consume(UnsafeBufferPointer(rebasing: readBuffer[0..<n])) { event in
                    deliver(event, exchange)
                }
            } catch let failure as HTTP1ResponseParser.Failure {
                close(connection)
                fail(exchange, error(failure, exchange, connection.parser))
                return
            } catch {
                close(connection)
                fail(exchange, error)
                return
            }
            if let encoding = exchange.refusedEncoding {
                close(connection)
                fail(exchange, HTTPClient.Failure.encodedBody(encoding: encoding))
                return
            }
            if connection.parser.isDone {
                complete(connection, exchange)
                return
            }
            // A short read emptied the socket, unless TLS holds bytes `poll` cannot see.
            if n < readBuffer.count && connection.tls?.hasPending != true { return }
        }
    }

    private func deliver(_ event: HTTP1ResponseParser.Event, _ exchange: HTTP1Exchange) {
        switch event {
        case .head(let status, let headers):
            if let encoding = HTTPClient.refusedEncoding(headers) {
                // Refused like on the URLSession path; `receive` ends the exchange.
                exchange.refusedEncoding = encoding
                return
            }
            exchange.status = status
            exchange.headers = headers
            if case .stream(let head, _)? = exchange.sink {
                exchange.headDelivered = true
                head.resume(returning: (status, headers))
            }
        case .body(let piece):
            guard exchange.refusedEncoding == nil else { return }
            switch exchange.sink {
            case .collect?: exchange.body.append(piece)
            case .stream(_, let body)?: body.yield(Data(buffer: piece))
            case nil: break
            }
        case .end:
            break
        }
    }

    /// The response is complete: hand it over, then reuse the connection or close it.
    private func complete(_ connection: HTTP1Connection, _ exchange: HTTP1Exchange) {
        if let encoding = exchange.refusedEncoding {
            close(connection)
            return fail(exchange, HTTPClient.Failure.encodedBody(encoding: encoding))
        }
        finish(exchange)
        connection.exchange = nil
        exchange.connection = nil
        connection.served += 1
        let pool = pool(connection.origin)
        // A server may answer before the whole request went out (a 413 to an upload): then the
        // connection is out of step and is closed.
        guard connection.parser.keepAlive, !connection.requestPending else {
            close(connection)
            return
        }
        connection.out = []
        connection.written = 0
        connection.fileBody = nil
        connection.reader?.cancel()
        connection.reader = nil
        connection.fileOffset = 0
        if let next = nextWaiting(pool) {
            start(next, on: connection)
        } else if draining {
            close(connection)
        } else {
            connection.state = .idle
            connection.idleSince = Self.now()
            pool.idle.append(connection)
        }
    }

    /// The connection ended (end of stream or an error) while `connection.exchange` was on it.
    private func broken(_ connection: HTTP1Connection, error code: Int32, whileWriting: Bool) {
        guard let exchange = connection.exchange else { return close(connection) }
        // The end of a body framed by the close.
        if code == 0 && !whileWriting {
            do {
                try connection.parser.endOfInput { event in deliver(event, exchange) }
                complete(connection, exchange)
                return
            } catch {}
        }
        let reused = connection.served > 0
        let nothingSent = !connection.sentAny
        close(connection)
        exchange.connection = nil
        if reused && nothingSent && !connection.parser.sawHead {
            // The server closed a kept-alive connection before this request went out: nothing
            // was sent, so sending it on a fresh connection is safe.
            dispatch(exchange)
            return
        }
        if connection.parser.sawHead {
            fail(exchange, HTTPClient.Failure.connectionLost(receivedBytes: connection.parser.bodyBytes, underlying: URLError(.networkConnectionLost)))
        } else {
            fail(exchange, URLError(.networkConnectionLost))
        }
    }

    private func error(_ failure: HTTP1ResponseParser.Failure, _ exchange: HTTP1Exchange, _ parser: HTTP1ResponseParser) -> any Error {
        switch failure {
        case .bodyTooLarge(let declared): return HTTPClient.Failure.bodyTooLarge(limit: exchange.maxBodyBytes, declared: declared)
        case .truncated where parser.sawHead:
            return HTTPClient.Failure.connectionLost(receivedBytes: parser.bodyBytes, underlying: URLError(.networkConnectionLost))
        case .truncated: return URLError(.networkConnectionLost)
        case .malformed, .headTooLarge:
            if parser.sawHead {
                return HTTPClient.Failure.connectionLost(receivedBytes: parser.bodyBytes, underlying: URLError(.cannotParseResponse))
            }
            return URLError(.badServerResponse)
        }
    }

    /// A deadline passed during a TLS handshake: said as such (nothing was sent).
    private static func handshakeTimeout(_ exchange: HTTP1Exchange, _ error: any Error) -> any Error {
        let reason =
            if case HTTPClient.Failure.deadlineExceeded(let seconds)? = error as? HTTPClient.Failure {
                "the server did not complete it within the request's deadline of \(seconds) s"
            } else {
                "the server stalled for \(Double(exchange.idleTimeout) / 1e9) s (request timeout) in the middle of it"
            }
        return HTTPClient.Failure.tls(.init(host: exchange.tls?.host ?? "", stage: .timeout, reason: reason, retryable: true))
    }

    private func nextWaiting(_ pool: Pool) -> HTTP1Exchange? {
        while pool.waitingHead < pool.waiting.count {
            let exchange = pool.waiting[pool.waitingHead]
            pool.waitingHead += 1
            if pool.waitingHead == pool.waiting.count {
                pool.waiting.removeAll(keepingCapacity: true)
                pool.waitingHead = 0
            } else if pool.waitingHead > 1024 && pool.waitingHead * 2 > pool.waiting.count {
                pool.waiting.removeFirst(pool.waitingHead)
                pool.waitingHead = 0
            }
            if !exchange.finished { return exchange }
        }
        return nil
    }

    private func close(_ connection: HTTP1Connection) {
        guard connection.state != .closed else { return }
        if connection.state == .idle {
            let pool = pool(connection.origin)
            if let index = pool.idle.firstIndex(where: { $0 === connection }) { pool.idle.remove(at: index) }
        }
        connection.state = .closed
        if let session = connection.tls, let resumption = resumptions[connection.origin] {
            // After a TLS error (not a mere close) the server's session is not offered again.
            if session.failedWithTLSError { resumption.session = nil }
            if resumption.probe === connection { releaseHeld(resumption) }
        }
        connection.reader?.cancel()
        connection.reader = nil
        // The TLS session goes before its socket (it never writes on close: no close_notify is owed to a server we leave).
        connection.tls = nil
        Sockets.close(connection.fd)
        connection.fd = -1
        let pool = pool(connection.origin)
        pool.open -= 1
        // A slot opened: the oldest waiting request takes it.
        if pool.open < maxConnectionsPerOrigin, let next = nextWaiting(pool) { open(for: next, in: pool) }
    }

    private func finish(_ exchange: HTTP1Exchange) {
        guard !exchange.finished else { return }
        exchange.finished = true
        switch exchange.sink {
        case .collect(let continuation)?:
            continuation.resume(returning: HTTPClient.Response(status: exchange.status, headers: exchange.headers, body: exchange.body))
        case .stream(_, let body)?:
            body.finish()
        case nil: break
        }
        exchange.sink = nil
    }

    private func fail(_ exchange: HTTP1Exchange, _ error: any Error) {
        guard !exchange.finished else { return }
        exchange.finished = true
        exchange.connection = nil
        switch exchange.sink {
        case .collect(let continuation)?:
            continuation.resume(throwing: error)
        case .stream(let head, let body)?:
            if exchange.headDelivered {
                body.finish(throwing: error)
            } else {
                head.resume(throwing: error)
                body.finish(throwing: error)
            }
        case nil: break
        }
        exchange.sink = nil
    }

    /// Ends what is past its deadline or silent too long; the poll timeout until the next deadline.
    private func expireAndNextTimeout(_ now: UInt64) -> Int32 {
        var next = UInt64.max
        func check(_ exchange: HTTP1Exchange) -> (any Error)? {
            if now >= exchange.deadline { return HTTPClient.Failure.deadlineExceeded(seconds: exchange.resourceSeconds) }
            let idleEnd = exchange.lastActivity &+ exchange.idleTimeout
            if now >= idleEnd { return URLError(.timedOut) }
            next = min(next, exchange.deadline, idleEnd)
            return nil
        }
        for connection in connections {
            switch connection.state {
            case .active, .connecting, .handshaking:
                guard let exchange = connection.exchange else { continue }
                if let error = check(exchange) {
                    let handshaking = connection.state == .handshaking
                    close(connection)
                    fail(exchange, handshaking ? Self.handshakeTimeout(exchange, error) : error)
                }
            case .idle:
                let end = connection.idleSince &+ Self.idleConnectionLifetime
                if now >= end { close(connection) } else { next = min(next, end) }
            case .closed:
                continue
            }
        }
        for resumption in resumptions.values where resumption.releaseAt != .max {
            if now >= resumption.releaseAt {
                // No session in time: these and later handshakes go ahead in full.
                resumption.noSession = resumption.session == nil
                releaseHeld(resumption)
            } else {
                next = min(next, resumption.releaseAt)
            }
        }
        for pool in pools.values where pool.waitingHead < pool.waiting.count {
            for exchange in pool.waiting[pool.waitingHead...] where !exchange.finished {
                if let error = check(exchange) { fail(exchange, error) }
            }
        }
        if connections.contains(where: { $0.state == .closed }) { connections.removeAll { $0.state == .closed } }
        guard next != .max else { return -1 }
        // Round up so the loop wakes after, not just before, the deadline.
        return Int32(clamping: (next - min(next, now) + 999_999) / 1_000_000)
    }
}
