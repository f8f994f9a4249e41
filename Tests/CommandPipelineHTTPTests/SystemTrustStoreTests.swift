import Foundation
import PipelineTestSupport
import Testing

@testable import CommandPipelineHTTP

#if canImport(COpenSSL)
/// How the system's trust store is read (`SystemTrustStore`, ADR 0007): the certificate
/// directory one certificate at a time, the bundle only the first time a chain needs an issuer
/// the directory does not have. Verified with OpenSSL directly against the test CA's leaf
/// (`good.pem`); the end-to-end check through the CLI and a TLS server is
/// `TLSTransportTests.theSystemStoreIsTheDirectoryThenTheBundle`.
struct SystemTrustStoreTests {
    struct Files {
        let root: URL
        let leaf: String
        /// The test CA under its subject hash, as `update-ca-certificates` lays out /etc/ssl/certs.
        let hashed: String
        /// The test CA under a plain name: OpenSSL's directory lookup cannot find it there.
        let plain: String
        /// A bundle of two CAs: the test CA and another.
        let bundle: String
        /// A bundle of the other CA alone.
        let otherBundle: String
    }

    static func files() throws -> Files {
        let (_, ca) = try Peers.tlsScenarios.get()
        let scenarios = ca.deletingLastPathComponent()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("trust-unit-\(UUID().uuidString)")
        let hashed = root.appendingPathComponent("hashed"), plain = root.appendingPathComponent("plain")
        for directory in [hashed, plain] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: ca, to: directory.appendingPathComponent("test-ca.pem"))
        }
        let rehash = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["openssl", "rehash", hashed.path], timeout: 60)
        #expect(rehash.status == 0, "\(rehash.output)")
        let other = try Data(contentsOf: scenarios.appendingPathComponent("other-ca.pem"))
        try (try Data(contentsOf: ca) + other).write(to: root.appendingPathComponent("bundle.pem"))
        try other.write(to: root.appendingPathComponent("other-bundle.pem"))
        return Files(
            root: root, leaf: scenarios.appendingPathComponent("good.pem").path, hashed: hashed.path, plain: plain.path,
            bundle: root.appendingPathComponent("bundle.pem").path, otherBundle: root.appendingPathComponent("other-bundle.pem").path)
    }

    static func context(_ store: SystemTrustStore) throws -> TLSContext {
        try TLSContext.make(caFile: nil, systemStore: store).get()
    }

    @Test func aChainTheDirectoryAnswersNeverReadsTheBundle() throws {
        let files = try Self.files()
        defer { try? FileManager.default.removeItem(at: files.root) }
        let context = try Self.context(SystemTrustStore(file: files.bundle, directories: [files.plain, files.hashed]))
        #expect(context.certificatesRead == 0, "nothing is read when the context is made")
        #expect(context.verifies(certificateAt: files.leaf))
        #expect(context.certificatesRead == 1, "the test CA from the directory, not the bundle's two")
    }

    @Test func aChainTheDirectoryCannotAnswerReadsTheBundleOnce() throws {
        let files = try Self.files()
        defer { try? FileManager.default.removeItem(at: files.root) }
        let context = try Self.context(SystemTrustStore(file: files.bundle, directories: [files.plain]))
        #expect(context.certificatesRead == 0)
        #expect(context.verifies(certificateAt: files.leaf))
        #expect(context.certificatesRead == 2, "the whole bundle, read at the first miss")
        #expect(context.verifies(certificateAt: files.leaf))
        #expect(context.certificatesRead == 2)
    }

    @Test func aCAInNeitherIsNotTrusted() throws {
        let files = try Self.files()
        defer { try? FileManager.default.removeItem(at: files.root) }
        #expect(!(try Self.context(SystemTrustStore(file: files.otherBundle, directories: [files.plain])).verifies(certificateAt: files.leaf)))
        let missing = files.root.appendingPathComponent("missing").path
        #expect(!(try Self.context(SystemTrustStore(file: missing, directories: [missing])).verifies(certificateAt: files.leaf)))
        // Checked with the same CA trusted, so the refusals above are about trust, not the leaf.
        #expect(try Self.context(SystemTrustStore(file: missing, directories: [files.hashed])).verifies(certificateAt: files.leaf))
    }

    @Test func theEnvironmentNamesTheFileAndTheDirectoriesAsOpenSSLReadsThem() {
        let chosen = SystemTrustStore.fromEnvironment(["SSL_CERT_FILE": "/x/bundle.pem", "SSL_CERT_DIR": "/a::/b:"])
        #expect(chosen == SystemTrustStore(file: "/x/bundle.pem", directories: ["/a", "/b"]))
        let defaults = SystemTrustStore.fromEnvironment(["SSL_CERT_FILE": "", "SSL_CERT_DIR": ""])
        #expect(!defaults.file.isEmpty && defaults.directories.count == 1, "OpenSSL's defaults: \(defaults)")
        #expect(defaults == SystemTrustStore.fromEnvironment([:]))
    }
}
#endif
