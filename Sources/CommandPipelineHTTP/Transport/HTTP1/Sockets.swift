import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A resolved socket address (the raw `sockaddr` bytes).
struct SocketAddress: Sendable, Equatable {
    var family: Int32
    var bytes: [UInt8]
}

/// An `errno` from a socket call.
struct SocketError: Error {
    var code: Int32
}

/// The few POSIX socket calls the HTTP/1.1 transport makes, with the platform differences in
/// one place: non-blocking TCP sockets, `poll(2)` (on Linux and Darwin alike), no `SIGPIPE`.
enum Sockets {
    #if canImport(Glibc)
    static let streamType = Int32(SOCK_STREAM.rawValue)
    static let sendFlags = Int32(MSG_NOSIGNAL)
    #else
    static let streamType = SOCK_STREAM
    static let sendFlags: Int32 = 0
    #endif

    static var errno: Int32 {
        #if canImport(Glibc)
        Glibc.errno
        #else
        Darwin.errno
        #endif
    }

    /// A non-blocking TCP socket connecting to `address`: the descriptor, and whether the
    /// connection is still being set up (`EINPROGRESS`). Throws the `errno` on failure.
    static func connect(_ address: SocketAddress) throws(SocketError) -> (fd: Int32, inProgress: Bool) {
        #if canImport(Glibc)
        // Non-blocking and close-on-exec from the start: a process another thread spawns
        // between `socket` and `fcntl` would otherwise inherit the connection and hold it open
        // after the loop closes it (the server would never see the close).
        let fd = socket(address.family, streamType | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(address.family, streamType, 0)
        #endif
        guard fd >= 0 else { throw SocketError(code: errno) }
        var yes: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
        #if canImport(Darwin)
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &yes, socklen_t(MemoryLayout<Int32>.size))
        #endif
        #if !canImport(Glibc)
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        #endif
        let result = address.bytes.withUnsafeBytes { raw in
            raw.withMemoryRebound(to: sockaddr.self) { sa in
                #if canImport(Glibc)
                Glibc.connect(fd, sa.baseAddress, socklen_t(raw.count))
                #else
                Darwin.connect(fd, sa.baseAddress, socklen_t(raw.count))
                #endif
            }
        }
        if result == 0 { return (fd, false) }
        let error = errno
        if error == EINPROGRESS || error == EINTR { return (fd, true) }
        close(fd)
        throw SocketError(code: error)
    }

    /// The outcome of a non-blocking connect once the socket is writable: 0 when connected.
    static func pendingError(_ fd: Int32) -> Int32 {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else { return errno }
        return error
    }

    /// Bytes written, 0 when the socket would block, or -errno.
    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        while true {
            #if canImport(Glibc)
            let n = Glibc.send(fd, bytes.baseAddress, bytes.count, sendFlags)
            #else
            let n = Darwin.send(fd, bytes.baseAddress, bytes.count, sendFlags)
            #endif
            if n >= 0 { return n }
            let error = errno
            if error == EINTR { continue }
            return error == EAGAIN || error == EWOULDBLOCK ? 0 : -Int(error)
        }
    }

    /// Bytes read (0 at end of stream), `nil` when the socket would block, or -errno.
    static func receive(_ fd: Int32, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            let error = errno
            if error == EINTR { continue }
            return error == EAGAIN || error == EWOULDBLOCK ? nil : -Int(error)
        }
    }

    /// Whether an idle connection is still open with nothing unread (the peer has neither
    /// closed it nor sent bytes nobody asked for).
    static func isOpenAndQuiet(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
    }

    static func close(_ fd: Int32) {
        #if canImport(Glibc)
        _ = Glibc.close(fd)
        #else
        _ = Darwin.close(fd)
        #endif
    }

    /// A non-blocking, close-on-exec channel that wakes the event loop: (read end, write end).
    static func wakePipe() -> (Int32, Int32)? {
        var fds: [Int32] = [0, 0]
        #if canImport(Glibc)
        // Both flags at once (see `connect`): a local socket pair, since Swift's Glibc has no `pipe2`.
        let type = streamType | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { return nil }
        #else
        guard pipe(&fds) == 0 else { return nil }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        #endif
        return (fds[0], fds[1])
    }

    static func poll(_ fds: inout [pollfd], timeoutMilliseconds: Int32) -> Int32 {
        #if canImport(Glibc)
        Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        #else
        Darwin.poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        #endif
    }

    static let pollIn = Int16(truncatingIfNeeded: POLLIN)
    static let pollOut = Int16(truncatingIfNeeded: POLLOUT)
    static let pollBroken = Int16(truncatingIfNeeded: POLLERR | POLLHUP | POLLNVAL)

    /// The addresses of `host`:`port` (blocking: call it off the event loop). An IP literal is
    /// converted without a lookup.
    static func resolve(host: String, port: Int) -> [SocketAddress] {
        var host = host
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, host, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            #if canImport(Darwin)
            v4.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
            #endif
            return [SocketAddress(family: AF_INET, bytes: withUnsafeBytes(of: v4) { Array($0) })]
        }
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            #if canImport(Darwin)
            v6.sin6_len = UInt8(MemoryLayout<sockaddr_in6>.size)
            #endif
            return [SocketAddress(family: AF_INET6, bytes: withUnsafeBytes(of: v6) { Array($0) })]
        }
        var hints = addrinfo()
        hints.ai_socktype = streamType
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let entry = node {
            if let sa = entry.pointee.ai_addr, entry.pointee.ai_family == AF_INET || entry.pointee.ai_family == AF_INET6 {
                let address = SocketAddress(
                    family: entry.pointee.ai_family, bytes: Array(UnsafeRawBufferPointer(start: sa, count: Int(entry.pointee.ai_addrlen))))
                if !addresses.contains(address) { addresses.append(address) }
            }
            node = entry.pointee.ai_next
        }
        return addresses
    }

}
