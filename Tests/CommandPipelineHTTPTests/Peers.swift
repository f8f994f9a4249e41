import Foundation
@_exported import CommandPipelineTesting
import PipelineTestSupport
import Synchronization
import Testing

/// Peer servers for the integration tests, started once per test process through
/// `Tests/Tools/run_peer.py` (which stops them when this process ends, however it ends).
/// If a server cannot be started the tests that need it fail: CI must run them, not skip them.
enum Peers {
    static var packageRoot: URL { TestPaths.packageRoot }
    static var python: URL { TestPaths.python }

    /// FakeAI (`pip install fakeai`), the OpenAI-compatible server from PyPI.
    static let fakeAI: Result<URL, PeerError> = start(
        "fakeai", [packageRoot.appendingPathComponent(".venv/bin/fakeai").path, "server", "--host", "127.0.0.1", "--port", "{port}"])

    /// Our own fault server for what FakeAI cannot do (429 with Retry-After, drops, hangs).
    static let faults: Result<URL, PeerError> = start(
        "fault server", [python.path, packageRoot.appendingPathComponent("Tests/Tools/fault_server.py").path, "{port}"])

    /// Several OpenAI-compatible deployments in one process, each at `/<name>/v1` and behaving
    /// as its name says (`ok-`, `fail-`, `throttle-`, `slow-`, `dies-`): the router's tests
    /// (`Tests/Tools/deployment_server.py`). The URL is the origin.
    static let deployments: Result<URL, PeerError> = start(
        "deployment server", [python.path, packageRoot.appendingPathComponent("Tests/Tools/deployment_server.py").path, "{port}"], path: "")

    /// An OpenAI-compatible server for structured-output repairs (`Tests/Tools/repair_server.py`):
    /// wrong JSON first, right JSON after a correction in the expected conversation shape.
    static let repair: Result<URL, PeerError> = start(
        "repair server", [python.path, packageRoot.appendingPathComponent("Tests/Tools/repair_server.py").path, "{port}"])

    /// A webhook receiver that records every request (`Tests/Tools/webhook_server.py`). The URL is the origin.
    static let webhook: Result<URL, PeerError> = start(
        "webhook server", [python.path, packageRoot.appendingPathComponent("Tests/Tools/webhook_server.py").path, "{port}"], path: "")

    /// A server that attacks its client: redirects, echoed keys, lying lengths, drips, absurd numbers.
    static let hostile: Result<URL, PeerError> = start(
        "hostile server", [python.path, packageRoot.appendingPathComponent("Tests/Tools/hostile_server.py").path, "{port}"])

    /// The hostile server over HTTPS, with a certificate from a throwaway CA made here with
    /// `openssl` (`ca`: the CA's certificate, for a process to trust). The URL is `https://127.0.0.1:PORT/v1`.
    static let hostileTLS: Result<(url: URL, ca: URL), PeerError> = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-tls-\(UUID().uuidString)")
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            return .failure(PeerError(description: "hostile TLS server: \(error)"))
        }
        let script = """
            set -e; cd '\(dir.path)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=pipeline-test-ca
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext
            """
        let made = try? runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", script], timeout: 60)
        guard made?.status == 0 else { return .failure(PeerError(description: "hostile TLS server: openssl failed: \(made?.output ?? "")")) }
        let server = start(
            "hostile server (TLS)",
            [python.path, packageRoot.appendingPathComponent("Tests/Tools/hostile_server.py").path, "{port}", "--tls",
             dir.appendingPathComponent("server.pem").path, dir.appendingPathComponent("server.key").path])
        return server.map { url in
            var parts = URLComponents(url: url, resolvingAgainstBaseURL: false)!
            parts.scheme = "https"
            return (parts.url!, dir.appendingPathComponent("ca.pem"))
        }
    }()

    /// TLS servers for the own transport's https tests (`Tests/Tools/tls_server.py`), one port
    /// per scenario, with certificates made here with `openssl`: from a throwaway CA (`ca`, for
    /// `--ca-file`) a good one, one for another name, an expired one; one from a second CA
    /// nobody trusts. `control` is the plain-http URL of the server's `/state`.
    static let tlsScenarios: Result<(control: URL, ca: URL), PeerError> = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tls-scenarios-\(UUID().uuidString)")
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            return .failure(PeerError(description: "TLS scenarios: \(error)"))
        }
        let script = """
            set -e; cd '\(dir.path)'
            key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
            key ca.key; openssl req -x509 -key ca.key -out ca.pem -days 2 -subj /CN=pipeline-tls-test-ca
            key other-ca.key; openssl req -x509 -key other-ca.key -out other-ca.pem -days 2 -subj /CN=pipeline-untrusted-ca
            leaf() {
                key "$1.key"; openssl req -new -key "$1.key" -out "$1.csr" -subj /CN=pipeline-tls-test
                printf 'subjectAltName=%s\\n' "$2" > "$1.ext"
                openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" -days "$4" -extfile "$1.ext" 2>/dev/null
            }
            leaf good IP:127.0.0.1,DNS:localhost ca 2
            leaf wronghost DNS:wrong.example ca 2
            leaf expired IP:127.0.0.1,DNS:localhost ca -1
            leaf unknown IP:127.0.0.1,DNS:localhost other-ca 2
            """
        let made = try? runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", script], timeout: 60)
        guard made?.status == 0 else { return .failure(PeerError(description: "TLS scenarios: openssl failed: \(made?.output ?? "")")) }
        return start("TLS scenarios", [python.path, packageRoot.appendingPathComponent("Tests/Tools/tls_server.py").path, "{port}", dir.path], path: "")
            .map { ($0, dir.appendingPathComponent("ca.pem")) }
    }()

    /// llmock (`pip install llmock`): Gemini's generateContent and streamGenerateContent under
    /// `/gemini/v1beta/…`, with faults scripted through `/_llmock/scenario`. The URL is the origin.
    static let llmock: Result<URL, PeerError> = start(
        "llmock", [packageRoot.appendingPathComponent(".venv/bin/llmock").path, "serve", "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
        path: "")

    /// A second llmock for the batch tests alone (OpenAI files + batches, Anthropic message
    /// batches): a message batch has no label, so the in-doubt reconciliation must not see other
    /// tests' batches. The URL is the origin.
    static let llmockBatches: Result<URL, PeerError> = start(
        "llmock (batches)",
        [packageRoot.appendingPathComponent(".venv/bin/llmock").path, "serve", "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
        path: "")

    /// A third llmock for the 10,000-command batch runs (`BatchEndToEndTests`), which run beside
    /// `BatchLLMockTests` and count the server's batches.
    static let llmockEndToEnd: Result<URL, PeerError> = start(
        "llmock (batch end to end)",
        [packageRoot.appendingPathComponent(".venv/bin/llmock").path, "serve", "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
        path: "")

    /// Our Gemini fixture (Files API, cachedContents, countTokens, generateContent), checked
    /// against Google's own SDK by `GeminiFixtureTests`. The URL is the origin.
    static let geminiFixture: Result<URL, PeerError> = start(
        "gemini fixture", [python.path, packageRoot.appendingPathComponent("Tests/Tools/gemini_fixture.py").path, "{port}"], path: "")

    /// llmock (`pip install llmock`) for the Anthropic adapter: Anthropic's routes are under
    /// `/anthropic`, answers echo the prompt, faults are scripted through `/_llmock/scenario`.
    static let llmockAnthropic: Result<URL, PeerError> = start(
        "llmock (anthropic)",
        [packageRoot.appendingPathComponent(".venv/bin/llmock").path, "serve", "--host", "127.0.0.1", "--port", "{port}",
         "--response-style", "echo", "--log-level", "warning"]
    ).map(origin)

    /// fakellm (`pip install fakellm`), a second server for Anthropic messages and streaming.
    static let fakeLLM: Result<URL, PeerError> = start(
        "fakellm", [python.path, packageRoot.appendingPathComponent("Tests/Tools/fakellm_peer.py").path, "{port}"]
    ).map(origin)

    /// Our Anthropic fixture (prompt caching, count_tokens, Files API), checked with the SDK.
    static let anthropicFixtureKey = "sk-ant-fixture-key-0042"
    static let anthropicFixture: Result<URL, PeerError> = start(
        "anthropic fixture",
        [python.path, packageRoot.appendingPathComponent("Tests/Tools/anthropic_fixture.py").path, "{port}", "--key", anthropicFixtureKey]
    ).map(origin)

    /// `http://127.0.0.1:PORT` from the `…/v1` URL `start` gives (Anthropic's base URL is the origin).
    private static func origin(_ url: URL) -> URL { url.deletingLastPathComponent() }

    struct PeerError: Error, CustomStringConvertible {
        var description: String
    }

    /// Keeps each launcher's stdin open for the life of this process.
    private static let lifelines = Mutex<[FileHandle]>([])

    /// The key LiteLLM's proxy takes (its `master_key`).
    static let liteLLMKey = "sk-litellm-test-master-0001"

    /// LiteLLM's proxy (PyPI `litellm[proxy]<1.107`) in front of `llmock`: every model name goes to
    /// llmock's OpenAI route (`openai/*`), whichever of LiteLLM's routes a request came in on —
    /// OpenAI's `/v1/chat/completions`, Anthropic's `/v1/messages`, Gemini's `/v1beta/models/…`.
    /// LiteLLM does not retry (`num_retries: 0`), so an upstream 429 comes back at once, with the
    /// upstream's hint forwarded as `llm_provider-retry-after`. Its Files and Batch API
    /// (`/v1/files`, `/v1/batches`) pass through to llmock's (`files_settings`; no database).
    /// The URL is the origin.
    static let liteLLM: Result<URL, PeerError> = {
        let litellm = packageRoot.appendingPathComponent(".venv/bin/litellm")
        guard FileManager.default.isExecutableFile(atPath: litellm.path) else {
            return .failure(PeerError(description: "litellm: \(litellm.path) is missing after Tests/Tools/setup-python-peers.sh ran"))
        }
        let upstream: URL
        switch llmock {
        case .success(let origin): upstream = origin
        case .failure(let error): return .failure(PeerError(description: "litellm needs llmock: \(error.description)"))
        }
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("litellm-\(UUID().uuidString).yaml")
        let text = """
            model_list:
              - model_name: "*"
                litellm_params:
                  model: "openai/*"
                  api_base: "\(upstream.appendingPathComponent("v1").absoluteString)"
                  api_key: "llmock-upstream-key-0001"
            files_settings:
              - custom_llm_provider: openai
                api_base: "\(upstream.appendingPathComponent("v1").absoluteString)"
                api_key: "llmock-upstream-key-0001"
            router_settings:
              num_retries: 0
            litellm_settings:
              num_retries: 0
              telemetry: false
            general_settings:
              master_key: "\(liteLLMKey)"
            """
        do { try Data(text.utf8).write(to: config) } catch { return .failure(PeerError(description: "litellm: cannot write its config: \(error)")) }
        // No network: the model cost map is the one shipped in the package.
        return start(
            "litellm",
            ["/usr/bin/env", "LITELLM_LOCAL_MODEL_COST_MAP=True", "LITELLM_LOG=ERROR", "LITELLM_TELEMETRY=False", "NO_DOCS=True", litellm.path,
             "--config", config.path, "--host", "127.0.0.1", "--port", "{port}"],
            path: "", health: "/health/liveliness")
    }()

    private static func start(_ name: String, _ command: [String], path: String = "/v1", health: String? = nil) -> Result<URL, PeerError> {
        if let problem = TestPaths.pythonPeersProblem { return .failure(PeerError(description: "\(name): \(problem)")) }
        guard FileManager.default.isExecutableFile(atPath: python.path), FileManager.default.isExecutableFile(atPath: command[0]) else {
            return .failure(PeerError(description: "\(name): \(command[0]) is missing after Tests/Tools/setup-python-peers.sh ran"))
        }
        let process = Process()
        process.executableURL = python
        process.arguments = [packageRoot.appendingPathComponent("Tests/Tools/run_peer.py").path] + (health.map { ["--health", $0] } ?? []) + command
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        do { try process.run() } catch { return .failure(PeerError(description: "\(name): cannot run the launcher: \(error)")) }
        lifelines.withLock { $0.append(input.fileHandleForWriting) }
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("PORT "), let port = Int(text.dropFirst(5)) else {
            return .failure(PeerError(description: "\(name) did not start: \(text)"))
        }
        return .success(URL(string: "http://127.0.0.1:\(port)\(path)")!)
    }
}

