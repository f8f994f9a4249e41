import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// Routing from Swift with the public API alone: `EngineConfiguration.routeDeployments(file:)`
/// reads the `--deployments` file, makes each deployment's adapter and the router, against
/// `Tests/Tools/deployment_server.py` (`ok-*` answers "<name>: <prompt>", `fail-*` answers 500).
@Suite(.serialized) struct RouteDeploymentsTests {
    static func file(_ text: String) throws -> String {
        try temporaryDirectory(files: ["deployments.json": text]).appendingPathComponent("deployments.json").path
    }

    static func deployment(_ name: String, _ origin: URL, weight: Int = 1, keyVariable: String? = nil) -> String {
        let base = origin.appendingPathComponent("\(name)/v1").absoluteString
        let key = keyVariable.map { #", "api_key_env": "\#($0)""# } ?? ""
        return #"{"name": "\#(name)", "provider": "openai", "base_url": "\#(base)", "model": "m-\#(name)", "weight": \#(weight)\#(key)}"#
    }

    @Test func aLogicalModelIsRoutedToItsDeploymentsAndOtherModelsToTheProvider() async throws {
        let origin = try Peers.deployments.get()
        let path = try Self.file(
            #"{"models": {"fast": [\#(Self.deployment("ok-lib-a", origin)), \#(Self.deployment("ok-lib-c", origin, weight: 3)), \#(Self.deployment("fail-lib-b", origin))]}, "breaker": {"failures": 2, "cooldown_ms": 600000}}"#)
        var configuration = EngineConfiguration(maxConcurrentCalls: 4)
        try configuration.routeDeployments(file: path)
        let engine = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
        var served: [String: Int] = [:]
        for i in 0..<40 {
            let command = PlannedCommand(id: "c\(i)", plan: ExecutionPlan(call: APICall(model: "fast", parts: [.text("question \(i)")])))
            let finalized = try await engine.executeWithFallback(command).get()
            let response = try #require(finalized.responses.first)
            let name = try #require(response.deployment, "a routed answer names its deployment")
            #expect(response.text == "\(name): question \(i)", "the deployment's own server answered")
            served[name, default: 0] += 1
        }
        #expect(served["fail-lib-b"] == nil, "a failing deployment never answers")
        #expect((served["ok-lib-a"] ?? 0) > 0 && (served["ok-lib-c"] ?? 0) > (served["ok-lib-a"] ?? 0), "\(served)")
        let plain = try await engine.executeWithFallback(PlannedCommand(id: "p", plan: ExecutionPlan(call: APICall(model: "mock", parts: [.text("hi")])))).get()
        #expect(plain.responses.first?.deployment == nil, "a model not in the file goes to the engine's provider")
    }

    @Test(arguments: [Int.min, -1, 0, Int.max])
    func anAbsurdConnectionCountIsClampedNotTrapped(connections: Int) async throws {
        let origin = try Peers.deployments.get()
        var configuration = EngineConfiguration()
        try configuration.routeDeployments(file: try Self.file(#"{"models": {"fast": [\#(Self.deployment("ok-clamp", origin))]}}"#), maxConnectionsPerHost: connections)
        let engine = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
        let answer = try await engine.executeWithFallback(PlannedCommand(id: "c", plan: ExecutionPlan(call: APICall(model: "fast", parts: [.text("hi")])))).get()
        #expect(answer.responses.first?.deployment == "ok-clamp")
    }

    @Test func aBadFileIsAConfigurationErrorNamingThePlace() throws {
        let origin = try Peers.deployments.get()
        var configuration = EngineConfiguration()
        let unknownKey = try Self.file(#"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m", "colour": "red"}]}}"#)
        #expect(throws: ConfigurationError.self) { try configuration.routeDeployments(file: unknownKey) }
        do {
            try configuration.routeDeployments(file: unknownKey)
        } catch {
            #expect(error.field == "router")
            #expect(error.message.contains(unknownKey) && error.message.contains("colour"), "\(error.message)")
        }
        let unset = try Self.file(#"{"models": {"fast": [\#(Self.deployment("ok-x", origin, keyVariable: "ROUTE_DEPLOYMENTS_TEST_UNSET"))]}}"#)
        do {
            try configuration.routeDeployments(file: unset, environment: [:])
            Issue.record("an unset key variable was accepted")
        } catch {
            #expect(error.message.contains("ROUTE_DEPLOYMENTS_TEST_UNSET"), "\(error.message)")
        }
        let provider = try Self.file(#"{"models": {"fast": [{"name": "a", "provider": "nonesuch", "model": "m"}]}}"#)
        do {
            try configuration.routeDeployments(file: provider)
            Issue.record("an unknown provider was accepted")
        } catch {
            #expect(error.message.contains("models.fast[0] (a)") && error.message.contains("nonesuch"), "\(error.message)")
        }
        #expect(throws: ConfigurationError.self) { try configuration.routeDeployments(file: "/nonexistent/deployments.json") }
    }
}
