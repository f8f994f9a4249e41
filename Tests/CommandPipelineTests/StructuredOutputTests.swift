@testable import CommandPipeline
import CommandPipelineTesting
import Testing

/// The engine's side of structured output: answers checked against `config.response_format`,
/// the parsed value in the response, repairs (re-asked with the answer and a correction),
/// `invalid_output` after the last one, repairs priced and counted.
@Suite struct StructuredOutputTests {
    static let schema: JSONValue = try! JSONParser.parse(
        #"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0}},"required":["name","age"],"additionalProperties":false}"#)
    static let format: JSONValue = .object(["type": "json_schema", "json_schema": .object(["name": "person", "schema": schema])])

    static func command(maxRepairs: Int? = nil, format: JSONValue = format, model: String = "m") -> PlannedCommand {
        var config = GenerationConfig(responseFormat: format)
        config.maxRepairs = maxRepairs
        return PlannedCommand(id: "s", plan: ExecutionPlan(call: APICall(model: model, parts: [.text("Who?")], config: config)))
    }

    static func engine(_ provider: any GenerationCapability, maxRepairs: Int = 1, catalog: ModelCatalog? = nil) throws -> PipelineEngine {
        var configuration = EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .zero, jitter: 0))
        configuration.maxRepairs = maxRepairs
        configuration.catalog = catalog
        return try PipelineEngine(provider: provider, configuration: configuration)
    }

    @Test func aConformingAnswerCarriesItsParsedValueAndNoRepair() async throws {
        let provider = ScriptedProvider(script: ["m": [.answer(#"{"name":"Ada","age":36}"#)]])
        let outcome = try await Self.engine(provider).run(Self.command())
        let response = try #require(outcome.result.success?.responses.first)
        #expect(response.parsed == .object(["name": "Ada", "age": 36]))
        #expect(outcome.telemetry.calls.first?.repairs == 0 && outcome.telemetry.calls.first?.attempts == 1)
        #expect(provider.requests.count == 1)
        // Without a JSON format nothing is parsed or checked.
        let plain = try await Self.engine(ScriptedProvider(otherwise: .answer("not json"))).run(
            PlannedCommand(id: "t", plan: ExecutionPlan(call: APICall(model: "m", parts: [.text("hi")]))))
        #expect(plain.succeeded && plain.result.success?.responses.first?.parsed == nil)
    }

    @Test func aWrongAnswerIsReAskedWithItsAnswerAndACorrectionThenSucceeds() async throws {
        let provider = ScriptedProvider(script: ["m": [.answer(#"{"name":"Ada","age":"36"}"#), .answer(#"{"name":"Ada","age":36}"#)]])
        let outcome = try await Self.engine(provider).run(Self.command())
        #expect(outcome.succeeded)
        #expect(outcome.result.success?.responses.first?.parsed == .object(["name": "Ada", "age": 36]))
        let call = try #require(outcome.telemetry.calls.first)
        #expect(call.repairs == 1 && call.attempts == 2 && call.retries == 0)
        #expect(outcome.telemetry.retries == 0)
        // The second request: the prompt, the rejected answer as an assistant turn, the correction.
        let requests = provider.requests
        #expect(requests.count == 2)
        #expect(requests[0].parts == [.text("Who?")])
        let repaired = requests[1].parts
        #expect(repaired.count == 3 && repaired[0] == .text("Who?"))
        #expect(repaired[1] == .history([HistoryTurn(question: "", answer: #"{"name":"Ada","age":"36"}"#)]))
        guard case .text(let correction) = repaired[2] else { Issue.record("no correction"); return }
        #expect(correction.contains("at $.age, expected an integer, found a string"))
        #expect(requests[1].config == requests[0].config)
    }

    @Test func anAnswerThatStaysWrongFailsWithInvalidOutputAndThePath() async throws {
        let provider = ScriptedProvider(script: ["m": [.answer(#"{"name":"Ada"}"#)]])
        let outcome = try await Self.engine(provider, maxRepairs: 2).run(Self.command())
        let error = try #require(outcome.error)
        #expect(error.kind == .invalidOutput && !error.retryable)
        #expect(error.path == "$")
        #expect(error.message.contains("expected the required property 'age', which is missing"))
        #expect(error.message.contains("after 2 repairs"))
        #expect(provider.requests.count == 3)
        #expect(outcome.telemetry.calls.first?.repairs == 2)
        #expect(outcome.failedCalls == [0])
        // Not JSON at all: path `$`, says it does not parse.
        let prose = try await Self.engine(ScriptedProvider(otherwise: .answer("Ada, 36")), maxRepairs: 0).run(Self.command())
        #expect(prose.error?.kind == .invalidOutput && prose.error?.message.contains("does not parse") == true)
    }

    @Test func maxRepairsZeroFailsAtOnceAndTheCallsOwnLimitWins() async throws {
        let wrong = ScriptedProvider(script: ["m": [.answer(#"{"name":1,"age":1}"#), .answer(#"{"name":"x","age":1}"#)]])
        let outcome = try await Self.engine(wrong, maxRepairs: 1).run(Self.command(maxRepairs: 0))
        #expect(outcome.error?.kind == .invalidOutput && outcome.error?.path == "$.name")
        #expect(wrong.requests.count == 1)
        #expect(outcome.telemetry.calls.first?.repairs == 0)
        // The engine's limit 0, the call's 1: repaired.
        let again = ScriptedProvider(script: ["m": [.answer(#"{"name":1,"age":1}"#), .answer(#"{"name":"x","age":1}"#)]])
        #expect(try await Self.engine(again, maxRepairs: 0).run(Self.command(maxRepairs: 1)).succeeded)
        #expect(again.requests.count == 2)
    }

    @Test func jsonObjectAsksForOneObject() async throws {
        let format: JSONValue = .object(["type": "json_object"])
        let provider = ScriptedProvider(script: ["m": [.answer("[1,2]"), .answer(#"{"ok":true}"#)]])
        let outcome = try await Self.engine(provider).run(Self.command(format: format))
        #expect(outcome.result.success?.responses.first?.parsed == .object(["ok": true]))
        #expect(outcome.telemetry.calls.first?.repairs == 1)
        guard case .text(let correction)? = provider.requests.last?.parts.last else { Issue.record("no correction"); return }
        #expect(correction.contains("expected one JSON object, found array"))
    }

    @Test func eachRepairIsPricedAsTheRequestItWas() async throws {
        let catalog = ModelCatalog([ModelInfo(name: "m", provider: "scripted", contextWindow: 100_000, maxOutputTokens: 1000,
            prices: ModelPrices(input: 1e6, cachedInput: 1e5, output: 2e6))])
        let provider = ScriptedProvider(script: ["m": [.answer(#"{"name":"Ada"}"#), .answer(#"{"name":"Ada","age":36}"#)]])
        let outcome = try await Self.engine(provider, catalog: catalog).run(Self.command())
        let cost = try #require(outcome.telemetry.cost)
        // The rejected answer (1 prompt token, 3 completion tokens: $1 + $6) is a failed attempt of call 0.
        let rejected = try #require(cost.parts.first { $0.request == .failedAttempt })
        #expect(rejected.callIndex == 0 && rejected.attempt == 1 && rejected.usd == 7)
        let answer = try #require(outcome.result.success?.responses.first?.cost)
        #expect(abs(cost.totalUSD - (answer.totalUSD + 7)) < 1e-9)
        // A call that fails after its last repair has every answer priced too.
        let failing = ScriptedProvider(script: ["m": [.answer(#"{"name":"Ada"}"#)]])
        let failed = try await Self.engine(failing, catalog: catalog).run(Self.command())
        #expect(failed.error?.kind == .invalidOutput)
        #expect(failed.telemetry.cost?.parts.filter { $0.request == .failedAttempt }.count == 2)
        #expect(abs((failed.telemetry.cost?.totalUSD ?? 0) - 14) < 1e-9)
    }

    @Test func aProviderFailureDuringARepairIsRetriedAsUsual() async throws {
        let unavailable = APIError(.providerError, "overloaded", retryable: true, code: "unavailable")
        let provider = ScriptedProvider(script: ["m": [.answer("nope"), .fail(unavailable), .answer(#"{"name":"A","age":1}"#)]])
        let outcome = try await Self.engine(provider).run(Self.command())
        #expect(outcome.succeeded)
        let call = try #require(outcome.telemetry.calls.first)
        #expect(call.attempts == 3 && call.repairs == 1 && call.retries == 1)
    }

    @Test func theEventsShowEachRejectedAnswer() async throws {
        let provider = ScriptedProvider(script: ["m": [.answer("{}"), .answer(#"{"name":"A","age":1}"#)]])
        var events: [PipelineEvent] = []
        for await event in try Self.engine(provider).events(for: Self.command()) { events.append(event) }
        let rejected = events.compactMap { event -> (APIError, Bool)? in
            if case .attemptFailed(0, _, let error, let willRetry) = event.kind { (error, willRetry) } else { nil }
        }
        #expect(rejected.count == 1)
        #expect(rejected.first?.0.kind == .invalidOutput && rejected.first?.1 == true)
        #expect(events.last?.type == "command_succeeded")
        // The repair's attempt is numbered after the rejected one.
        let started = events.compactMap { event -> Int? in if case .attemptStarted(0, let attempt, _, _) = event.kind { attempt } else { nil } }
        #expect(started == [1, 2])
    }

    @Test func aRetryDuringARepairIsNumberedAfterTheRejectedAnswerAndMetricsCountRepairsApart() async throws {
        let unavailable = APIError(.providerError, "overloaded", retryable: true, code: "unavailable")
        let provider = ScriptedProvider(script: ["m": [.answer("nope"), .fail(unavailable), .answer(#"{"name":"A","age":1}"#)]])
        let metrics = MetricsCollector()
        var configuration = EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .zero, jitter: 0))
        configuration.hooks = [metrics]
        var events: [PipelineEvent] = []
        for await event in try PipelineEngine(provider: provider, configuration: configuration).events(for: Self.command()) { events.append(event) }
        let numbers = events.compactMap { event -> String? in
            switch event.kind {
            case .attemptStarted(0, let attempt, _, _): "started \(attempt)"
            case .attemptFailed(0, let attempt, let error, _): "failed \(attempt) \(error.kind.rawValue)"
            default: nil
            }
        }
        #expect(numbers == ["started 1", "failed 1 invalid_output", "started 2", "failed 2 provider_error", "started 3"])
        // Streamed: the rejected answer's deltas do not make the repair's failure final (it is retried).
        #expect(events.last?.type == "command_succeeded")
        // One retry (the 503), not two: the repair is not a retry.
        #expect(metrics.snapshot().rows.first?.retries == 1)
    }

    @Test func aStreamedRepairThatBreaksKeepsOnlyItsOwnTextAsThePartialAnswer() async throws {
        let cut = APIError(.providerError, "connection dropped", retryable: true, code: "connection_lost")
        let provider = ScriptedProvider(script: ["m": [.answer("nope"), .breakAfter([#"{"na"#], cut)]])
        var outcome: CommandOutcome?
        for await event in try Self.engine(provider).events(for: Self.command()) {
            if case .commandFailed(let o) = event.kind { outcome = o }
        }
        let failed = try #require(outcome)
        #expect(failed.error?.code == ProviderCall.streamInterruptedCode)
        #expect(failed.partialResponses.map(\.text) == [#"{"na"#])
        #expect(failed.telemetry.calls.first?.repairs == 1)
    }

    @Test func theMockAnswersASchemaWithConformingJSONDerivedFromThePrompt() async throws {
        let schemas = [
            #"{"type":"object","properties":{"name":{"type":"string","minLength":3,"maxLength":8},"n":{"type":"integer","minimum":10,"maximum":20,"multipleOf":5},"x":{"type":"number","exclusiveMinimum":0.5,"multipleOf":0.25},"ok":{"type":"boolean"},"none":{"type":"null"},"color":{"enum":["red","green","blue"]},"k":{"const":"fixed"},"tags":{"type":"array","items":{"type":"string"},"minItems":2,"maxItems":4},"pair":{"prefixItems":[{"type":"integer"},{"type":"string"}],"items":false}},"required":["name","n"],"additionalProperties":false}"#,
            ##"{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":0}},"required":["v"]}},"$ref":"#/$defs/node"}"##,
            #"{"anyOf":[{"type":"integer","minimum":5,"maximum":1},{"type":"string","pattern":"^[0-9]+$"}]}"#,
            #"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
            #"{"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},{"properties":{"b":{"type":"integer"}},"required":["b"]}]}"#,
            #"{"type":["null","string"],"maxLength":2}"#,
            #"{"type":"object","minProperties":2,"additionalProperties":{"type":"integer"}}"#,
            #"{"type":"string","pattern":"^[a-z]+@example\\.com$"}"#,
        ]
        let provider = MockProvider.make()
        for text in schemas {
            let schema = try JSONParser.parse(text)
            let format: JSONValue = .object(["type": "json_schema", "json_schema": .object(["name": "t", "schema": schema])])
            for prompt in ["Who?", "Another prompt, longer than the others"] {
                var config = GenerationConfig(responseFormat: format)
                config.maxRepairs = 0
                let command = PlannedCommand(id: "m", plan: ExecutionPlan(call: APICall(model: "mock-model", parts: [.text(prompt)], config: config)))
                let outcome = try await Self.engine(provider).run(command)
                #expect(outcome.succeeded, "\(text) for \(prompt): \(String(describing: outcome.error))")
                let parsed = try #require(outcome.result.success?.responses.first?.parsed)
                #expect(try JSONSchema(schema, path: "s").validate(parsed) == nil)
                // Deterministic: the same command, the same answer.
                let twice = try await Self.engine(provider).run(command)
                #expect(twice.result.success?.responses.first?.text == outcome.result.success?.responses.first?.text)
            }
        }
        // The prompt shows in the answer's strings; json_object answers one object.
        let named = MockStructured.answer(Self.format, prompt: "Grace")
        #expect(named == #"{"name":"Grace","age":"# + "\(MockStructured.fnv1a("Grace") % 100)}")
        #expect(MockStructured.answer(.object(["type": "json_object"]), prompt: "hi") == #"{"echo":"hi"}"#)
        #expect(MockStructured.answer(.object(["type": "text"]), prompt: "hi") == nil)
    }

    @Test func aSchemaOutsideTheSubsetIsAnInvalidCommandBeforeAnyCall() async throws {
        let provider = ScriptedProvider(otherwise: .answer("{}"))
        let bad: JSONValue = .object(["type": "json_schema", "json_schema": .object(["name": "x", "schema": try JSONParser.parse(#"{"properties":{"x":{"if":{}}}}"#)])])
        let outcome = try await Self.engine(provider).run(Self.command(format: bad))
        #expect(outcome.error?.kind == .invalidCommand)
        #expect(outcome.error?.path == "plan.calls[0].config.response_format.json_schema.schema.properties.x.if")
        #expect(provider.requests.isEmpty)
        // max_repairs out of range.
        let outside = try await Self.engine(provider).run(Self.command(maxRepairs: 11))
        #expect(outside.error?.kind == .invalidCommand && outside.error?.path == "plan.calls[0].config.max_repairs")
        #expect(outside.error?.message.contains("max_repairs must be") == true)
    }
}

/// The mock's answer generator on hostile schemas and prompts: nothing traps, output is bounded.
@Suite struct MockStructuredBoundsTests {
    static func format(_ schema: String) -> JSONValue {
        .object(["type": "json_schema", "json_schema": .object(["name": "t", "schema": try! JSONParser.parse(schema)])])
    }

    @Test func aPromptLongerThanThePaddingBoundButShorterThanMinLengthIsNotPadded() throws {
        let prompt = String(repeating: "p", count: 1_000_001)
        let answer = try #require(MockStructured.answer(Self.format(#"{"type":"string","minLength":2000000}"#), prompt: prompt))
        #expect(answer == "\"" + prompt + "\"")
        // Shorter than the bound: padded to it.
        let short = try #require(MockStructured.answer(Self.format(#"{"type":"string","minLength":5}"#), prompt: "ab"))
        #expect(short == #""abxxx""#)
    }

    @Test func aHugeSchemaAnswerStopsAtTheBudgetWithTheSmallestValues() throws {
        // 10,000 strings of 1,000,000 characters would be 10 GB: the bytes run out after a few.
        let answer = try #require(MockStructured.answer(Self.format(#"{"type":"array","minItems":10000,"items":{"type":"string","minLength":1000000}}"#), prompt: "p"))
        #expect(answer.utf8.count <= MockStructured.Budget.bytes + 100_000)
        let items = try #require(try JSONParser.parse(answer).arrayValue)
        #expect(items.count == 10_000)
        #expect(items.first == .string("p" + String(repeating: "x", count: 999_999)))
        #expect(items.last == .string(""))
        // Objects with many extra properties, each an array: the nodes run out.
        let wide = try #require(MockStructured.answer(
            Self.format(#"{"type":"object","minProperties":10000,"additionalProperties":{"type":"array","minItems":10000,"items":{"type":"integer"}}}"#), prompt: "p"))
        #expect(wide.utf8.count <= 2_000_000)
    }

    @Test func aSelfReferencingAnyOfStopsAtTheBudget() throws {
        let schema = ##"{"$defs":{"n":{"anyOf":[{"$ref":"#/$defs/n"},{"$ref":"#/$defs/n"}]}},"$ref":"#/$defs/n"}"##
        #expect(throws: Never.self) { try JSONSchema(JSONParser.parse(schema), path: "s") }
        let answer = try #require(MockStructured.answer(Self.format(schema), prompt: "p"))
        #expect(answer.utf8.count < 1_000)
    }
}

/// A secret written with JSON escapes (`\u002d`) passes the provider's redaction of the raw text
/// but appears once the answer is parsed: the parsed value, the events and the error never carry it.
@Suite struct StructuredOutputRedactionTests {
    static let key = "sk-proj-" + String(repeating: "Q7wErTy9", count: 10)
    /// The key as a model may echo it: every `-` escaped.
    static let escaped = key.replacingOccurrences(of: "-", with: #"\u002d"#)

    static func run(_ answers: [String], schema: String, maxRepairs: Int) async throws -> (CommandOutcome, [PipelineEvent]) {
        var configuration = EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 1, baseDelay: .zero, jitter: 0))
        configuration.maxRepairs = maxRepairs
        configuration.secrets = [key]
        let provider = ScriptedProvider(script: ["m": answers.map { .answer($0) }])
        let engine = try PipelineEngine(provider: provider, configuration: configuration)
        let format: JSONValue = .object(["type": "json_schema", "json_schema": .object(["name": "t", "schema": try JSONParser.parse(schema)])])
        let command = PlannedCommand(id: "r", plan: ExecutionPlan(call: APICall(model: "m", parts: [.text("Key?")], config: GenerationConfig(responseFormat: format))))
        var events: [PipelineEvent] = []
        for await event in engine.events(for: command) { events.append(event) }
        let outcome = await engine.run(command)
        return (outcome, events)
    }

    /// Whether `text` holds the key or a 16-character piece of it (a cut key leaves a piece).
    static func leaks(_ text: String) -> Bool {
        let scalars = Array(key)
        return stride(from: 0, through: scalars.count - 16, by: 4).contains { text.contains(String(scalars[$0..<($0 + 16)])) }
    }

    @Test func theParsedValueHasEveryStringAndKeyRedacted() async throws {
        let answer = #"{"k":"\#(Self.escaped)","\#(Self.escaped)":["x \#(Self.escaped) y"]}"#
        #expect(!answer.contains(Self.key))  // the raw text does not show it: only parsing does
        let (outcome, _) = try await Self.run([answer], schema: #"{"type":"object"}"#, maxRepairs: 0)
        let parsed = try #require(outcome.result.success?.responses.first?.parsed)
        #expect(parsed == .object(JSONObject([(key: "k", value: "<redacted>"), (key: "<redacted>", value: ["x <redacted> y"])])))
        #expect(!Self.leaks(JSONSerializer.serialize(parsed)))
    }

    @Test func violationsEventsAndTheErrorNeverCarryTheKeyEvenCut() async throws {
        // `const` shows the answer (cut at 80 characters, through the key); an extra property
        // named by the key shows in the path.
        let cases = [
            (#"{"k":"\#(Self.escaped)"}"#, #"{"const":1}"#),
            (#"{"\#(Self.escaped)":1}"#, #"{"type":"object","additionalProperties":false}"#),
            (#"["\#(Self.escaped)"]"#, #"{"type":"array","items":{"type":"string","pattern":"^x$"}}"#),
        ]
        for (answer, schema) in cases {
            let (outcome, events) = try await Self.run([answer, answer], schema: schema, maxRepairs: 1)
            let error = try #require(outcome.error)
            #expect(error.kind == .invalidOutput)
            #expect(!Self.leaks(error.message) && !Self.leaks(error.path ?? ""), "\(error)")
            let failed = events.compactMap { event -> APIError? in if case .attemptFailed(_, _, let e, _) = event.kind { e } else { nil } }
            #expect(failed.count == 2)
            for summary in failed { #expect(!Self.leaks(String(describing: summary)), "\(summary)") }
            // (The text deltas are the raw answer, escapes and all: the provider's redaction covers them.)
            let rest = events.filter { if case .textDelta = $0.kind { false } else { true } }
            #expect(!Self.leaks(String(describing: rest)))
        }
        // Without the redactor the same answer does show the key: the test sees what it guards.
        let plain = try OutputFormat.of(.object(["type": "json_object"]), path: "f")!.check(#"{"k":"\#(Self.escaped)"}"#)
        #expect(try Self.leaks(JSONSerializer.serialize(plain.get())))
    }
}
