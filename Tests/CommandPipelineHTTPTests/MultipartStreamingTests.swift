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

/// Multipart uploads sent as head + the file streamed from its opened descriptor + tail
/// (`MultipartBody`, `HTTP1FileBody`): the bytes are exactly those of the old body built in a
/// temporary file, and a file that changes size while it is sent fails the request, never
/// completing a wrong body. Every wait is bounded.
@Suite struct MultipartStreamingTests {
    static let boundary = "TestBoundary-0123"

    /// A fresh file in the temporary directory holding `bytes` (the caller removes it).
    static func file(_ bytes: [UInt8]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("multipart-test-\(UUID().uuidString)")
        try Data(bytes).write(to: url)
        return url
    }

    static func opened(_ url: URL) throws -> OpenedFile {
        try OpenedFile.open(url.path, maximumBytes: Int.max).get()
    }

    /// The body as the old builder wrote it (fields, the file part, the closing boundary).
    static func oldBody(purpose: String?, filename: String, mimeType: String, content: [UInt8]) -> [UInt8] {
        var head = ""
        if let purpose { head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n\(purpose)\r\n" }
        head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\nContent-Type: \(mimeType)\r\n\r\n"
        return Array(head.utf8) + content + Array("\r\n--\(boundary)--\r\n".utf8)
    }

    /// Every piece of `body` in order, or nil at the first empty one.
    static func allPieces(_ body: HTTP1FileBody) -> [UInt8]? {
        var out: [UInt8] = []
        while out.count < body.size {
            let piece = body.piece(at: out.count)
            if piece.isEmpty { return nil }
            #expect(piece.count <= HTTP1FileBody.chunk)
            out += piece
        }
        return out
    }

    static func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) } }

    @Test func piecesAreTheOldBuildersBytesForASmallFile() async throws {
        let content = Array("hello\nworld \u{00e9}\r\n".utf8)
        let url = try Self.file(content)
        defer { try? FileManager.default.removeItem(at: url) }
        let multipart = MultipartBody(
            fields: [("purpose", "user_data")], fileField: "file", file: try Self.opened(url), filename: "a\"b\n.txt", mimeType: "text/plain",
            boundary: Self.boundary)
        let expected = Self.oldBody(purpose: "user_data", filename: "a_b.txt", mimeType: "text/plain", content: content)
        #expect(multipart.contentType == "multipart/form-data; boundary=\(Self.boundary)")
        #expect(multipart.length == expected.count)
        let body = try HTTP1FileBody(head: multipart.head, file: multipart.file, tail: multipart.tail)
        #expect(body.size == expected.count)
        #expect(Self.allPieces(body) == expected)
        #expect(body.piece(at: body.size).isEmpty, "nothing past the announced length")
        // The URLSession path's temporary file holds the same bytes.
        let written = try await multipart.writeTemporaryFile()
        defer { try? FileManager.default.removeItem(at: written) }
        #expect(Array(try Data(contentsOf: written)) == expected)
    }

    @Test func lengthIsCheckedNotWrapped() {
        #expect(HTTP1FileBody.length(head: 10, file: 20, tail: 3) == 33)
        #expect(HTTP1FileBody.length(head: 1, file: Int.max, tail: 0) == nil)
        #expect(HTTP1FileBody.length(head: 0, file: Int.max - 1, tail: 2) == nil)
        #expect(HTTP1FileBody.length(head: -1, file: 5, tail: 0) == nil)
        #expect(HTTP1FileBody.length(head: 0, file: Int.max, tail: 0) == Int.max)
    }

    /// A file of several pieces: every piece boundary (head into file, file into tail) is crossed.
    @Test func piecesCrossEveryBoundaryOfALargerFile() throws {
        let content = Self.pattern(HTTP1FileBody.chunk * 2 + 1234)
        let url = try Self.file(content)
        defer { try? FileManager.default.removeItem(at: url) }
        let multipart = MultipartBody(fields: [], fileField: "file", file: try Self.opened(url), filename: "big.bin", mimeType: "application/octet-stream", boundary: Self.boundary)
        let body = try HTTP1FileBody(head: multipart.head, file: multipart.file, tail: multipart.tail)
        #expect(Self.allPieces(body) == Self.oldBody(purpose: nil, filename: "big.bin", mimeType: "application/octet-stream", content: content))
    }

    @Test func aFileThatShrinksWhileSentFailsPrecisely() throws {
        let url = try Self.file(Self.pattern(HTTP1FileBody.chunk * 2 + 500))
        defer { try? FileManager.default.removeItem(at: url) }
        let multipart = MultipartBody(fields: [], fileField: "file", file: try Self.opened(url), filename: "f", mimeType: "text/plain", boundary: Self.boundary)
        let body = try HTTP1FileBody(head: multipart.head, file: multipart.file, tail: multipart.tail)
        #expect(body.piece(at: 0).count == HTTP1FileBody.chunk)
        #expect(truncate(url.path, off_t(HTTP1FileBody.chunk + 10)) == 0)
        #expect(body.piece(at: HTTP1FileBody.chunk).isEmpty)
        let message = try #require(body.failure?.message)
        #expect(message.contains("shrank while it was sent"), "\(message)")
        #expect(message.contains("\(HTTP1FileBody.chunk * 2 + 500) bytes"), "\(message)")
    }

    @Test func aFileThatGrowsWhileSentFailsBeforeTheTail() throws {
        let content = Self.pattern(HTTP1FileBody.chunk + 700)
        let url = try Self.file(content)
        defer { try? FileManager.default.removeItem(at: url) }
        let multipart = MultipartBody(fields: [], fileField: "file", file: try Self.opened(url), filename: "f", mimeType: "text/plain", boundary: Self.boundary)
        let body = try HTTP1FileBody(head: multipart.head, file: multipart.file, tail: multipart.tail)
        let first = body.piece(at: 0)
        #expect(first.count == HTTP1FileBody.chunk)
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("more".utf8))
        try handle.close()
        #expect(body.piece(at: first.count).isEmpty, "the tail must not follow a file that grew")
        let message = try #require(body.failure?.message)
        #expect(message.contains("grew while it was sent"), "\(message)")
        // Unchanged again (same size): the body is whole once more.
        #expect(truncate(url.path, off_t(content.count)) == 0)
        #expect(Self.allPieces(body) == Self.oldBody(purpose: nil, filename: "f", mimeType: "text/plain", content: content))
        #expect(body.failure == nil)
    }

    /// Through the client on the own transport: the server receives the old builder's bytes,
    /// with the header that announces them.
    @Test func onTheWireTheBodyIsTheOldBuildersBytes() async throws {
        let content = Self.pattern(HTTP1FileBody.chunk + 99)
        let url = try Self.file(content)
        defer { try? FileManager.default.removeItem(at: url) }
        let server = try UploadCapture()
        defer { server.stop() }
        let multipart = MultipartBody(
            fields: [("purpose", "assistants")], fileField: "file", file: try Self.opened(url), filename: "x.bin", mimeType: "application/octet-stream",
            boundary: Self.boundary)
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)/v1/files")!, timeoutInterval: 120)
        request.httpMethod = "POST"
        let response = try await HTTPClient().upload(request, multipart: multipart)
        #expect(response.status == 200)
        try await server.done.wait(seconds: 120)
        let captured = try #require(server.captured)
        let expected = Self.oldBody(purpose: "assistants", filename: "x.bin", mimeType: "application/octet-stream", content: content)
        #expect(captured.complete)
        #expect(captured.body == expected)
        #expect(captured.head.contains("Content-Length: \(expected.count)\r\n"), "\(captured.head)")
        #expect(captured.head.contains("Content-Type: multipart/form-data; boundary=\(Self.boundary)\r\n"), "\(captured.head)")
    }

    /// The file is cut while the request is under way (the server holds its reading until
    /// then): the request fails saying so, and the server never receives a whole body.
    @Test func aFileCutMidSendFailsTheRequest() async throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("multipart-test-\(UUID().uuidString)")
        #expect(FileManager.default.createFile(atPath: url.path, contents: nil))
        defer { try? FileManager.default.removeItem(at: url) }
        let size = 48 << 20  // sparse: far more than the socket buffers take while the server waits
        #expect(truncate(url.path, off_t(size)) == 0)
        let resume = ServerSignal("the file was cut")
        let server = try UploadCapture(pause: resume)
        defer {
            resume.raise()
            server.stop()
        }
        let multipart = MultipartBody(fields: [], fileField: "file", file: try Self.opened(url), filename: "cut.bin", mimeType: "application/octet-stream", boundary: Self.boundary)
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)/v1/files")!, timeoutInterval: 120)
        request.httpMethod = "POST"
        let upload = Task { try await HTTPClient().upload(request, multipart: multipart) }
        try await server.started.wait(seconds: 120)
        #expect(truncate(url.path, off_t(1 << 20)) == 0)
        resume.raise()
        do {
            let response = try await upload.value
            Issue.record("the upload succeeded (\(response.status)) although its file was cut")
        } catch let failure as OpenedFile.Failure {
            #expect(failure.message.contains("shrank while it was sent"), "\(failure.message)")
            #expect(failure.message.contains(url.path), "\(failure.message)")
        }
        try await server.done.wait(seconds: 120)
        let captured = try #require(server.captured)
        #expect(!captured.complete, "the server must not receive a whole body")
        #expect(captured.body.count < size)
    }
}

/// One connection on 127.0.0.1 (port 0, blocking sockets on a thread of its own): reads a
/// request head and its `Content-Length` bytes of body (at most 120 s per read), answers 200
/// with a file object when the body was whole, and keeps what it read. With `pause`, it stops
/// after the first body bytes (raising `started`) until `pause` is raised.
final class UploadCapture: @unchecked Sendable {
    struct Captured: Sendable {
        var head: String
        var body: [UInt8]
        var complete: Bool
    }

    let port: Int
    private let listener: Int32
    private let result = Mutex<Captured?>(nil)
    /// Whether the listener is still open: `stop()` must never shut down a reused descriptor number.
    private let listening = Mutex(true)
    let started = ServerSignal("the upload's first bytes arrived")
    let done = ServerSignal("the upload was read")
    var captured: Captured? { result.withLock { $0 } }

    init(pause: ServerSignal? = nil) throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 8) == 0 else {
            _ = close(fd)
            throw URLError(.cannotConnectToHost)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = fd
        Thread { [self] in
            defer {
                listening.withLock { open in
                    open = false
                    _ = close(fd)
                }
                done.raise()
            }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            defer { _ = close(client) }
            var timeout = timeval(tv_sec: 120, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buffer: [UInt8] = []
            var scratch = [UInt8](repeating: 0, count: 65_536)
            func receive() -> Bool {
                let n = recv(client, &scratch, scratch.count, 0)
                guard n > 0 else { return false }
                buffer.append(contentsOf: scratch[0..<n])
                return true
            }
            var headEnd: Int?
            while headEnd == nil {
                guard receive() else { return }
                headEnd = buffer.firstRange(of: [13, 10, 13, 10])?.upperBound
            }
            let end = headEnd!
            let head = String(decoding: buffer[..<end], as: UTF8.self)
            var declared = 0
            for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                declared = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            if let pause {
                while buffer.count == end { guard receive() else { break } }
                started.raise()
                try? pause.waitBlocking(seconds: 120)
            }
            while buffer.count - end < declared, receive() {}
            let body = Array(buffer[end...].prefix(declared))
            let complete = body.count == declared
            result.withLock { $0 = Captured(head: head, body: body, complete: complete) }
            if complete {
                let answer = #"{"id":"file-1","object":"file"}"#
                let reply = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(answer.utf8.count)\r\nConnection: close\r\n\r\n\(answer)".utf8)
                #if canImport(Glibc)
                _ = reply.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                #else
                _ = reply.withUnsafeBytes { send(client, $0.baseAddress, $0.count, 0) }
                #endif
            }
        }.start()
    }

    func stop() {
        listening.withLock { open in
            if open { _ = shutdown(listener, Int32(SHUT_RDWR)) }
        }
    }
}
