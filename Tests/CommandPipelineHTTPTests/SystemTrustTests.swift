import Foundation
import PipelineTestSupport
import Testing

@testable import CommandPipelineHTTP

/// How a TLS context trusts the system's CAs (`SystemTrust`): the hashed directory alone, read
/// one issuer at a time, where the environment leaves the system's own store in place; OpenSSL's
/// default paths otherwise. Certificates made here with `openssl`: a root, an intermediate it
/// signed, a leaf the intermediate signed (a public CA's chain in small), and another root.
struct SystemTrustTests {
    struct Made {
        let dir: URL
        var root: String { dir.appendingPathComponent("root.pem").path }
        var intermediate: String { dir.appendingPathComponent("intermediate.pem").path }
        var leaf: String { dir.appendingPathComponent("leaf.pem").path }
        var other: String { dir.appendingPathComponent("other.pem").path }
        /// A leaf `other` signed itself (no intermediate).
        var otherLeaf: String { dir.appendingPathComponent("other-leaf.pem").path }
    }

    static let made: Result<Made, Peers.PeerError> = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("system-trust-\(UUID().uuidString)")
        let script = """
            set -e; mkdir -p '\(dir.path)'; cd '\(dir.path)'
            key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
            key root.key; openssl req -x509 -key root.key -out root.pem -days 2 -subj /CN=pipeline-system-trust-root
            key other.key; openssl req -x509 -key other.key -out other.pem -days 2 -subj /CN=pipeline-system-trust-other
            key intermediate.key; openssl req -new -key intermediate.key -out intermediate.csr -subj /CN=pipeline-system-trust-intermediate
            printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > intermediate.ext
            openssl x509 -req -in intermediate.csr -CA root.pem -CAkey root.key -CAcreateserial -out intermediate.pem -days 2 -extfile intermediate.ext 2>/dev/null
            key leaf.key; openssl req -new -key leaf.key -out leaf.csr -subj /CN=pipeline-system-trust-leaf
            printf 'subjectAltName=DNS:localhost\\n' > leaf.ext
            openssl x509 -req -in leaf.csr -CA intermediate.pem -CAkey intermediate.key -CAcreateserial -out leaf.pem -days 2 -extfile leaf.ext 2>/dev/null
            openssl x509 -req -in leaf.csr -CA other.pem -CAkey other.key -CAcreateserial -out other-leaf.pem -days 2 -extfile leaf.ext 2>/dev/null
            """
        let run = try? runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", script], timeout: 60)
        guard run?.status == 0 else { return .failure(Peers.PeerError(description: "openssl failed: \(run?.output ?? "")")) }
        return .success(Made(dir: dir))
    }()

    /// A new directory holding `certificates` under their subject hashes, as `openssl rehash` names them.
    static func hashedDirectory(_ certificates: [String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hashed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("empty-\(UUID().uuidString)").path
        for certificate in certificates {
            // A context holding only this certificate says its subject hash.
            let context = try TLSContext.make(caFile: certificate, systemTrust: .directory(empty)).get()
            let hash = try #require(context.subjectHashes.first)
            try FileManager.default.copyItem(atPath: certificate, toPath: dir.appendingPathComponent(SystemTrust.hashFileName(hash)).path)
        }
        return dir.path
    }

    @Test func pemBlocksAreComparedWithoutTheirWhitespace() {
        func blocks(_ text: String) -> Set<String>? { SystemTrust.pemBlocks(Array(text.utf8)[...]) }
        let block = "-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----"
        #expect(blocks("# a comment\n\(block)\n") == ["-----BEGINCERTIFICATE-----MIIBAAAA-----ENDCERTIFICATE-----"])
        #expect(blocks(block.replacingOccurrences(of: "\n", with: "\r\n")) == blocks(block))
        #expect(blocks(block + "\n" + block.replacingOccurrences(of: "AAAA", with: "BBBB"))?.count == 2)
        #expect(blocks(block + "\n" + block)?.count == 1)
        #expect(blocks("no certificate here") == [])
        // Blocks OpenSSL may read where this does not (so a directory holding one is no match):
        // never ended, after a byte-order mark, deep in a line.
        #expect(blocks("-----BEGIN CERTIFICATE-----\nMIIB") == nil)
        #expect(blocks("\u{FEFF}" + block) == nil)
        #expect(blocks(String(repeating: "x", count: 300) + block) == nil)
    }

    @Test func hashFileNamesAreThoseOpenSSLReads() {
        #expect(SystemTrust.isHashName("5ad8a5d6.0"))
        #expect(SystemTrust.isHashName("002c0b4f.12"))
        #expect(!SystemTrust.isHashName("5AD8A5D6.0"))
        #expect(!SystemTrust.isHashName("5ad8a5d.0"))
        #expect(!SystemTrust.isHashName("5ad8a5d6.pem"))
        #expect(!SystemTrust.isHashName("5ad8a5d6.r0"))
        #expect(!SystemTrust.isHashName("5ad8a5d6."))
        #expect(!SystemTrust.isHashName("ca-certificates.crt"))
        #expect(SystemTrust.hashFileName(0x2c0b4f) == "002c0b4f.0")
        #expect(SystemTrust.hashFileName(0x5ad8_a5d6) == "5ad8a5d6.0")
    }

    @Test func theDirectoryIsUsedOnlyWhereTheEnvironmentLeavesTheSystemsOwnStore() throws {
        let made = try Self.made.get()
        let directory = try Self.hashedDirectory([made.root])
        let bundle = made.dir.appendingPathComponent("bundle.pem").path
        try FileManager.default.copyItem(atPath: made.root, toPath: bundle)
        let linked = made.dir.appendingPathComponent("bundle-link.pem").path
        try FileManager.default.createSymbolicLink(atPath: linked, withDestinationPath: bundle)
        let system = (file: bundle, directory: directory)

        #expect(SystemTrust.fromEnvironment([:], system: system) == .directory(directory))
        // Naming the system's own file (through a link) and directory changes nothing.
        #expect(SystemTrust.fromEnvironment(["SSL_CERT_FILE": linked, "SSL_CERT_DIR": directory + "/"], system: system) == .directory(directory))
        // Another store, chosen by the user: OpenSSL's default paths, which read it.
        #expect(SystemTrust.fromEnvironment(["SSL_CERT_FILE": made.other], system: system) == .defaultPaths)
        #expect(SystemTrust.fromEnvironment(["SSL_CERT_FILE": ""], system: system) == .defaultPaths)
        #expect(SystemTrust.fromEnvironment(["SSL_CERT_DIR": "\(directory):/tmp"], system: system) == .defaultPaths)
        #expect(SystemTrust.fromEnvironment(["SSL_CERT_DIR": made.dir.path], system: system) == .defaultPaths)
        // A CA appended to the bundle by hand (never hashed into the directory), or a bundle
        // holding another certificate than the directory: the bundle is read, as before.
        let appended = made.dir.appendingPathComponent("appended.pem").path
        try Data((try String(contentsOfFile: made.root, encoding: .utf8) + "\n" + String(contentsOfFile: made.other, encoding: .utf8)).utf8)
            .write(to: URL(fileURLWithPath: appended))
        #expect(SystemTrust.fromEnvironment([:], system: (appended, directory)) == .defaultPaths)
        #expect(SystemTrust.fromEnvironment([:], system: (made.other, directory)) == .defaultPaths)
        #expect(SystemTrust.fromEnvironment([:], system: (made.dir.appendingPathComponent("missing.pem").path, directory)) == .defaultPaths)
        // A hash numbered with a gap (OpenSSL stops at the first missing number), a FIFO named
        // like a hash (held open for writing here, so a regression fails instead of hanging).
        let gap = try Self.hashedDirectory([made.root])
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: gap).first)
        try FileManager.default.moveItem(atPath: gap + "/" + name, toPath: gap + "/" + name.replacingOccurrences(of: ".0", with: ".1"))
        #expect(SystemTrust.fromEnvironment([:], system: (bundle, gap)) == .defaultPaths)
        let withFIFO = try Self.hashedDirectory([made.root])
        #expect(mkfifo(withFIFO + "/abcdef01.0", 0o600) == 0)
        let writer = open(withFIFO + "/abcdef01.0", O_RDWR | O_NONBLOCK)
        defer { close(writer) }
        #expect(writer >= 0)
        #expect(SystemTrust.fromEnvironment([:], system: (bundle, withFIFO)) == .defaultPaths)
        #expect(SystemTrust.fromEnvironment(["SSL_CERT_DIR": "\(directory):"], system: system) == .defaultPaths)
        // The same certificates, laid out differently (line breaks, order): the directory.
        let reflowed = made.dir.appendingPathComponent("reflowed.pem").path
        try Data(try String(contentsOfFile: made.root, encoding: .utf8).replacingOccurrences(of: "\n", with: "\r\n").utf8).write(to: URL(fileURLWithPath: reflowed))
        #expect(SystemTrust.fromEnvironment([:], system: (reflowed, directory)) == .directory(directory))
        // No hashed certificates in the system's directory (Fedora keeps only the bundle), or none at all.
        #expect(SystemTrust.fromEnvironment([:], system: (bundle, made.dir.path)) == .defaultPaths)
        #expect(SystemTrust.fromEnvironment([:], system: (bundle, made.dir.appendingPathComponent("missing").path)) == .defaultPaths)
        #expect(SystemTrust.fromEnvironment([:], system: nil) == .defaultPaths)
    }

    @Test func aChainVerifiesFromTheDirectoryReadingOnlyItsRoot() throws {
        let made = try Self.made.get()
        let directory = try Self.hashedDirectory([made.other, made.root])
        let context = try TLSContext.make(caFile: nil, systemTrust: .directory(directory)).get()
        #expect(context.systemTrust == .directory(directory))
        #expect(context.certificatesRead == 0)
        #expect(context.verifies(certificateAt: made.leaf, chain: made.intermediate))
        #expect(context.certificatesRead == 1, "only the root the chain ends in is read")
        // Without the intermediate the server sends, no chain: the directory has no such issuer.
        #expect(!context.verifies(certificateAt: made.leaf))

        let untrusting = try TLSContext.make(caFile: nil, systemTrust: .directory(try Self.hashedDirectory([made.other]))).get()
        #expect(!untrusting.verifies(certificateAt: made.leaf, chain: made.intermediate))
    }

    @Test func aCAFileCertificateHidingOneInTheDirectoryTurnsTheDefaultPathsOn() throws {
        let made = try Self.made.get()
        let directory = try Self.hashedDirectory([made.root])
        // `other` has a subject hash of its own: the directory stays, and both are trusted.
        let beside = try TLSContext.make(caFile: made.other, systemTrust: .directory(directory)).get()
        #expect(beside.systemTrust == .directory(directory))
        #expect(beside.verifies(certificateAt: made.leaf, chain: made.intermediate))
        // `root` under its own hash in the directory too: in memory, it would hide the directory's.
        let hiding = try TLSContext.make(caFile: made.root, systemTrust: .directory(try Self.hashedDirectory([made.root, made.other]))).get()
        #expect(hiding.systemTrust == .defaultPaths)
        #expect(hiding.verifies(certificateAt: made.leaf, chain: made.intermediate))
        // The directory is not read at all then: `other`, only there, is not trusted.
        #expect(!hiding.verifies(certificateAt: made.otherLeaf))
        #expect(beside.verifies(certificateAt: made.otherLeaf))
    }
}
