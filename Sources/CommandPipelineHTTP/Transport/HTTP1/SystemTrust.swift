import Foundation
#if canImport(COpenSSL)
import COpenSSL
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a TLS context trusts the system's certificate authorities (ADR 0007, "The system's
/// trust store").
///
/// OpenSSL's default paths (`SSL_CTX_set_default_verify_paths`) parse the whole bundle file
/// (Debian: `/etc/ssl/certs/ca-certificates.crt`, ~140 certificates) when the context is made:
/// ~20 ms of CPU with OpenSSL 3.0 before the first https request of every run. Where the
/// system also keeps its CAs in a hashed directory (Debian, Ubuntu and Alpine do:
/// `update-ca-certificates` writes the bundle and the directory from the same list) and the
/// directory holds exactly the bundle's certificates (compared as PEM text, ~2 ms), the
/// context trusts that directory alone: OpenSSL reads one certificate from it (by its subject
/// hash, `5ad8a5d6.0`) when a chain needs that issuer, so a run reads the one root its
/// providers' chains end in. Trust is the same set either way. OpenSSL's default paths stay
/// where the two differ (a CA appended to the bundle by hand, as images behind a company's
/// TLS proxy often do), where there is no hashed directory (Fedora, RHEL), where
/// `SSL_CERT_FILE` or `SSL_CERT_DIR` names another store than the system's own (the user chose
/// it: honoured exactly, as every OpenSSL client does; naming the system's own file and
/// directory, as many images do for other tools, changes nothing), and where a `--ca-file`
/// certificate has the subject hash of one in the directory (the certificate in memory would
/// hide that one from the directory lookup).
enum SystemTrust: Sendable, Equatable {
    /// The certificates of this hashed directory, read one issuer at a time.
    case directory(String)
    /// OpenSSL's default paths: the bundle (parsed when the context is made) and the directory.
    case defaultPaths

    /// The trust every context of this process uses, decided once: the comparison reads ~140
    /// files (~7 ms), and a run may make a context per provider, batch client and sink.
    static let forThisProcess = fromEnvironment()

    /// The trust for this process: the system's hashed directory (`system.directory`, OpenSSL's
    /// default) when it holds hashed certificates and `environment`'s `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR`, where set, name the system's own file and directory; else the default paths.
    static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, system: (file: String, directory: String)? = systemDefaults
    ) -> SystemTrust {
        guard let system else { return .defaultPaths }
        if let file = environment["SSL_CERT_FILE"], !sameFile(file, system.file) { return .defaultPaths }
        // A list (`a:b`) is OpenSSL's to read, even when it happens to name an existing path.
        if let directory = environment["SSL_CERT_DIR"], directory.contains(":") || !sameFile(directory, system.directory) { return .defaultPaths }
        return holdsTheBundle(directory: system.directory, bundle: system.file) ? .directory(system.directory) : .defaultPaths
    }

    /// Whether the certificates filed under subject hashes in `directory` are exactly those of
    /// the PEM file `bundle` (compared as PEM blocks, whitespace aside; none is no match), each
    /// hash numbered from `.0` without a gap (OpenSSL stops at the first missing number).
    static func holdsTheBundle(directory: String, bundle: String) -> Bool {
        // No hashed certificate (Fedora keeps only the bundle): no match, without reading the bundle.
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory), names.contains(where: isHashName),
            let bundled = pemBlocks(inFile: bundle), !bundled.isEmpty
        else { return false }
        var filed = Set<String>()
        var numbers: [Substring: [Int]] = [:]
        for name in names where isHashName(name) {
            guard let blocks = pemBlocks(inFile: directory + "/" + name), blocks.isSubset(of: bundled) else { return false }
            filed.formUnion(blocks)
            let parts = name.split(separator: ".")
            numbers[parts[0], default: []].append(Int(parts[1]) ?? -1)
        }
        return filed == bundled && numbers.values.allSatisfy { $0.sorted() == Array(0..<$0.count) }
    }

    /// The PEM blocks of the file at `path` (`-----BEGIN X-----` through `-----END X-----`,
    /// whitespace removed); nil when it is not a regular file (a FIFO would block the start),
    /// cannot be read whole, or is larger than 16 MiB.
    static func pemBlocks(inFile path: String) -> Set<String>? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG, status.st_size >= 0, status.st_size <= 16 << 20 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var filled = 0
        while filled < bytes.count {
            let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if got < 0 && errno == EINTR { continue }
            if got < 0 { return nil }
            if got == 0 { break }
            filled += got
        }
        return pemBlocks(bytes[..<filled])
    }

    /// Line by line, as bytes (a bundle is ~220 KB: a character-by-character scan took 50 ms).
    /// Nil when a block is not where this reads it but OpenSSL might (a `-----BEGIN` not at a
    /// line's start: after a byte-order mark, deep in a long line) or one never ends.
    static func pemBlocks(_ text: ArraySlice<UInt8>) -> Set<String>? {
        let begin = Array("-----BEGIN ".utf8), end = Array("-----END ".utf8), anyBegin = Array("-----BEGIN".utf8)
        var markers = 0
        var at = text.startIndex
        while let dash = text[at...].firstIndex(of: 0x2D) {
            if text[dash...].starts(with: anyBegin) { markers += 1 }
            at = dash + 1
        }
        var begun = 0
        var blocks = Set<String>()
        var block: [UInt8]? = nil
        var lineStart = text.startIndex
        while lineStart < text.endIndex {
            let lineEnd = text[lineStart...].firstIndex(of: 0x0A) ?? text.endIndex
            let line = text[lineStart..<lineEnd]
            if line.starts(with: begin) {
                block = []
                begun += 1
            }
            if block != nil {
                block!.append(contentsOf: line.lazy.filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D })
                if line.starts(with: end) {
                    // As a string: hashed as one buffer (an array of bytes hashes byte by byte).
                    blocks.insert(String(decoding: block!, as: UTF8.self))
                    block = nil
                }
            }
            lineStart = lineEnd == text.endIndex ? lineEnd : lineEnd + 1
        }
        return markers == begun && block == nil ? blocks : nil
    }

    /// Whether both paths exist and resolve to one file (symbolic links followed).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        guard !a.isEmpty, !b.isEmpty, let x = realpath(a, nil) else { return false }
        defer { free(x) }
        guard let y = realpath(b, nil) else { return false }
        defer { free(y) }
        return strcmp(x, y) == 0
    }

    /// Whether `name` is a certificate's in a hashed directory: eight hex digits, a dot, a
    /// number (what `openssl rehash` and `update-ca-certificates` write; `.rN` are CRLs).
    static func isHashName(_ name: String) -> Bool {
        let parts = name.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 8, !parts[1].isEmpty, parts[1].count <= 4 else { return false }
        let isHex = { (c: UInt8) in (0x30...0x39).contains(c) || (0x61...0x66).contains(c) }
        return parts[0].allSatisfy(isHex) && parts[1].allSatisfy { (0x30...0x39).contains($0) }
    }

    /// The file a hashed directory keeps the first certificate of subject hash `hash` under.
    static func hashFileName(_ hash: UInt) -> String {
        let hex = String(hash & 0xFFFF_FFFF, radix: 16)
        return String(repeating: "0", count: max(0, 8 - hex.count)) + hex + ".0"
    }

    /// OpenSSL's default bundle file and certificate directory.
    #if canImport(COpenSSL)
    static var systemDefaults: (file: String, directory: String)? {
        guard let file = X509_get_default_cert_file(), let directory = X509_get_default_cert_dir() else { return nil }
        return (String(cString: file), String(cString: directory))
    }
    #else
    static var systemDefaults: (file: String, directory: String)? { nil }
    #endif
}
