@testable import CommandPipeline
import Testing

/// The structured-output schema subset: each keyword accepts what conforms and names the first
/// violation's path and what was expected; unsupported keywords are refused with their path;
/// hostile schemas and answers are bounded.
@Suite struct JSONSchemaTests {
    static func json(_ text: String) -> JSONValue { try! JSONParser.parse(text) }

    /// (schema, instance, nil when it conforms / else the violation's path and a piece of its message)
    static let table: [(String, String, (String, String)?)] = [
        // type, unions, integer vs number
        (#"{"type":"string"}"#, #""a""#, nil),
        (#"{"type":"string"}"#, "1", ("$", "expected a string, found an integer")),
        (#"{"type":"integer"}"#, "3", nil),
        (#"{"type":"integer"}"#, "3.0", nil),
        (#"{"type":"integer"}"#, "3.5", ("$", "expected an integer, found a number")),
        (#"{"type":"number"}"#, "3.5", nil),
        (#"{"type":"boolean"}"#, "true", nil),
        (#"{"type":"null"}"#, "0", ("$", "expected null")),
        (#"{"type":["string","null"]}"#, "null", nil),
        (#"{"type":["string","null"]}"#, "[]", ("$", "expected one of string, null, found an array")),
        (#"{"type":"object"}"#, "[]", ("$", "expected an object")),
        (#"{"type":"array"}"#, "{}", ("$", "expected an array")),
        // properties, required, additionalProperties
        (#"{"type":"object","properties":{"a":{"type":"integer"}}}"#, #"{"a":1,"b":2}"#, nil),
        (#"{"properties":{"a":{"type":"integer"}}}"#, #"{"a":"x"}"#, ("$.a", "expected an integer")),
        (#"{"required":["a","b"]}"#, #"{"a":1}"#, ("$", "required property 'b'")),
        (#"{"properties":{"a":{}},"additionalProperties":false}"#, #"{"a":1,"b":2}"#, ("$.b", "additionalProperties is false")),
        (#"{"additionalProperties":{"type":"string"}}"#, #"{"a":"x","b":2}"#, ("$.b", "expected a string")),
        (#"{"properties":{"a b":{"type":"string"}}}"#, #"{"a b":1}"#, (#"$["a b"]"#, "expected a string")),
        // items, prefixItems
        (#"{"items":{"type":"integer"}}"#, "[1,2,3]", nil),
        (#"{"items":{"type":"integer"}}"#, #"[1,"x"]"#, ("$[1]", "expected an integer")),
        (#"{"prefixItems":[{"type":"string"},{"type":"integer"}],"items":false}"#, #"["a",1]"#, nil),
        (#"{"prefixItems":[{"type":"string"},{"type":"integer"}],"items":false}"#, #"["a",1,2]"#, ("$[2]", "expected nothing")),
        (#"{"prefixItems":[{"type":"string"}]}"#, "[1]", ("$[0]", "expected a string")),
        // enum, const
        (#"{"enum":["red","green"]}"#, #""red""#, nil),
        (#"{"enum":["red","green"]}"#, #""blue""#, ("$", #"expected one of ["red","green"], found "blue""#)),
        (#"{"enum":[1]}"#, "1.0", nil),
        (#"{"const":{"a":[1,2]}}"#, #"{"a":[1,2]}"#, nil),
        (#"{"const":{"a":1,"b":2}}"#, #"{"b":2,"a":1}"#, nil),
        (#"{"const":"x"}"#, #""y""#, ("$", #"expected exactly "x""#)),
        // anyOf, oneOf, allOf
        (#"{"anyOf":[{"type":"string"},{"type":"integer"}]}"#, "1", nil),
        (#"{"anyOf":[{"type":"string"},{"type":"integer"}]}"#, "true", ("$", "one of anyOf's 2 schemas")),
        (#"{"oneOf":[{"type":"integer"},{"minimum":0}]}"#, "-1", nil),
        (#"{"oneOf":[{"type":"integer"},{"minimum":0}]}"#, "1", ("$", "it matches 2")),
        (#"{"oneOf":[{"type":"integer"},{"type":"string"}]}"#, "[]", ("$", "exactly one of oneOf's 2 schemas")),
        (#"{"allOf":[{"required":["a"]},{"required":["b"]}]}"#, #"{"a":1}"#, ("$", "required property 'b'")),
        (#"{"allOf":[{"required":["a"]},{"required":["b"]}]}"#, #"{"a":1,"b":2}"#, nil),
        // $ref / $defs (and recursion through them)
        (##"{"$defs":{"n":{"type":"integer"}},"properties":{"x":{"$ref":"#/$defs/n"}}}"##, ##"{"x":"no"}"##, ("$.x", "expected an integer")),
        (##"{"definitions":{"n":{"type":"integer"}},"items":{"$ref":"#/definitions/n"}}"##, "[1,2]", nil),
        (##"{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#"}}},"additionalProperties":false}"##,
         #"{"kids":[{"kids":[]},{"kids":[{"x":1}]}]}"#, ("$.kids[1].kids[0].x", "additionalProperties is false")),
        // numeric bounds
        (#"{"minimum":1,"maximum":3}"#, "3", nil),
        (#"{"minimum":1}"#, "0", ("$", "expected a number ≥ 1, found 0")),
        (#"{"maximum":3}"#, "3.5", ("$", "≤ 3")),
        (#"{"exclusiveMinimum":1}"#, "1", ("$", "> 1")),
        (#"{"exclusiveMaximum":3}"#, "3", ("$", "< 3")),
        (#"{"multipleOf":3}"#, "9", nil),
        (#"{"multipleOf":3}"#, "10", ("$", "multiple of 3")),
        (#"{"multipleOf":0.1}"#, "0.3", nil),
        (#"{"multipleOf":0.1}"#, "0.35", ("$", "multiple of 0.1")),
        // length bounds (characters, not bytes)
        (#"{"minLength":2,"maxLength":3}"#, #""éé""#, nil),
        (#"{"minLength":2}"#, #""é""#, ("$", "at least 2 characters, found 1")),
        (#"{"maxLength":3}"#, #""abcd""#, ("$", "at most 3 characters")),
        (#"{"minItems":2}"#, "[1]", ("$", "at least 2 items")),
        (#"{"maxItems":1}"#, "[1,2]", ("$", "at most 1 items")),
        (#"{"minProperties":1}"#, "{}", ("$", "at least 1 properties")),
        (#"{"maxProperties":1}"#, #"{"a":1,"b":2}"#, ("$", "at most 1 properties")),
        // pattern (a search, as JSON Schema says)
        (#"{"pattern":"^[a-z]+$"}"#, #""abc""#, nil),
        (#"{"pattern":"^[a-z]+$"}"#, #""abc1""#, ("$", "matching the pattern ^[a-z]+$")),
        (#"{"pattern":"b"}"#, #""abc""#, nil),
        // keywords for other types do not apply
        (#"{"minLength":5,"minimum":3}"#, "[1]", nil),
        // annotations are ignored
        (#"{"title":"t","description":"d","default":1,"examples":[1],"$schema":"x","$id":"y","$comment":"c","format":"date-time","type":"string"}"#, #""not a date""#, nil),
        // boolean schemas
        ("true", "[1]", nil),
        (#"{"properties":{"a":false}}"#, #"{"a":1}"#, ("$.a", "expected nothing")),
    ]

    @Test func eachKeywordAcceptsWhatConformsAndNamesTheFirstViolation() throws {
        for (schemaText, instanceText, expected) in Self.table {
            let schema = try JSONSchema(Self.json(schemaText), path: "s")
            let violation = schema.validate(Self.json(instanceText))
            if let (path, piece) = expected {
                #expect(violation?.path == path, "\(schemaText) with \(instanceText): \(String(describing: violation))")
                #expect(violation?.message.contains(piece) == true, "\(schemaText) with \(instanceText): \(String(describing: violation?.message))")
            } else {
                #expect(violation == nil, "\(schemaText) with \(instanceText): \(String(describing: violation))")
            }
        }
    }

    @Test(arguments: [
        (#"{"properties":{"x":{"if":{}}}}"#, "s.properties.x.if", "unsupported schema keyword 'if'"),
        (#"{"not":{}}"#, "s.not", "unsupported schema keyword 'not'"),
        (#"{"anyOf":[{},{"patternProperties":{}}]}"#, "s.anyOf[1].patternProperties", "unsupported"),
        (#"{"$defs":{"a":{"dependentRequired":{}}}}"#, "s.$defs.a.dependentRequired", "unsupported"),
        (#"{"type":"str"}"#, "s.type", "type must be one of"),
        (#"{"type":[]}"#, "s.type", "at least one type"),
        (#"{"required":"a"}"#, "s.required", "array of property names"),
        (#"{"enum":[]}"#, "s.enum", "non-empty array"),
        (#"{"anyOf":[]}"#, "s.anyOf", "non-empty array of schemas"),
        (#"{"minLength":-1}"#, "s.minLength", "whole number"),
        (#"{"multipleOf":0}"#, "s.multipleOf", "above 0"),
        (#"{"minimum":"1"}"#, "s.minimum", "must be a number"),
        (#"{"pattern":"(["}"#, "s.pattern", "not a valid regular expression"),
        (##"{"$ref":"#/$defs/missing"}"##, "s.$ref", "does not resolve"),
        (#"{"$ref":"https://example.com/s.json"}"#, "s.$ref", "only local references"),
        (##"{"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}"##, "s.$defs.a.$ref", "cycle of references"),
        (#"{"properties":{"a":1}}"#, "s.properties.a", "must be an object or a boolean"),
        ("[]", "s", "must be an object or a boolean"),
    ])
    func anUnsupportedOrMalformedKeywordIsAnInvalidCommandNamingItsPath(schema: String, path: String, piece: String) {
        do {
            _ = try JSONSchema(Self.json(schema), path: "s")
            Issue.record("accepted \(schema)")
        } catch {
            #expect(error.kind == .invalidCommand)
            #expect(error.path == path)
            #expect(error.message.contains(piece), "\(error.message)")
        }
    }

    @Test func hostileSchemasAreBoundedInDepthAndSize() {
        // 100 levels of nested properties: refused, not recursed into.
        var deep = #"{"type":"string"}"#
        for _ in 0..<100 { deep = #"{"properties":{"a":"# + deep + "}}" }
        #expect(throws: APIError.self) { try JSONSchema(Self.json(deep), path: "s") }
        // 64 levels are fine.
        var ok = #"{"type":"string"}"#
        for _ in 0..<31 { ok = #"{"properties":{"a":"# + ok + "}}" }
        #expect((try? JSONSchema(Self.json(ok), path: "s")) != nil)
        // Too many subschemas.
        let wide = "{\"properties\":{" + (0..<10_001).map { "\"p\($0)\":{}" }.joined(separator: ",") + "}}"
        do {
            _ = try JSONSchema(Self.json(wide), path: "s")
            Issue.record("a schema of 10,001 subschemas was accepted")
        } catch {
            #expect(error.message.contains("more than 10000 subschemas"))
        }
        // An over-long pattern.
        let long = #"{"pattern":""# + String(repeating: "a", count: 1001) + #""}"#
        #expect(throws: APIError.self) { try JSONSchema(Self.json(long), path: "s") }
    }

    @Test func aRecursiveReferenceWithoutProgressStopsAtItsDepth() throws {
        // `a` refers to itself through allOf: never consumes the answer, so only the bound stops it.
        let schema = try JSONSchema(Self.json(##"{"$defs":{"a":{"allOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"}"##), path: "s")
        let violation = schema.validate(.int(1))
        #expect(violation?.message.contains("references nest deeper than 64") == true)
    }

    @Test func exponentialSchemasStopAtTheStepBound() throws {
        // 22 levels of anyOf over two references to the level below: a small schema with 2^22
        // paths, all failing at the end. The step bound ends it with a violation that says so.
        var defs = [#""l0":{"type":"string"}"#]
        for i in 1...22 { defs.append("\"l\(i)\":{\"anyOf\":[{\"$ref\":\"#/$defs/l\(i - 1)\"},{\"$ref\":\"#/$defs/l\(i - 1)\"}]}") }
        let text = "{\"$defs\":{" + defs.joined(separator: ",") + "},\"$ref\":\"#/$defs/l22\"}"
        let schema = try JSONSchema(Self.json(text), path: "s")
        let violation = try #require(schema.validate(.int(1), against: schema.root, maxSteps: 10_000))
        #expect(violation.message == "validation took more than 10000 steps: the schema is too complex for this answer")
        #expect(schema.validate(.string("fine"), against: schema.root, maxSteps: 10_000) == nil)
        // Nested combinators say the innermost complaint once.
        let small = try JSONSchema(Self.json(#"{"anyOf":[{"anyOf":[{"type":"string"}]}]}"#), path: "s")
        #expect(small.validate(.int(1))?.message == "expected a value matching one of anyOf's 1 schemas; the first says: expected a string, found an integer")
    }

    @Test func theAnswerIsParsedCheckedAndBounded() throws {
        let format = try #require(try OutputFormat.of(Self.json(#"{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","required":["a"]}}}"#), path: "f"))
        #expect(format.check(#"{"a":1}"#) == .success(Self.json(#"{"a":1}"#)))
        // One Markdown fence around the JSON is taken off.
        #expect(format.check("```json\n{\"a\":1}\n```") == .success(Self.json(#"{"a":1}"#)))
        #expect(format.check("Sure! {\"a\":1}").failure?.message.contains("does not parse") == true)
        #expect(format.check("{}").failure?.path == "$")
        // Too deep: a violation, not a crash.
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(format.check(deep).failure?.message.contains("nesting at most 64") == true)
        let tooDeepToParse = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(format.check(tooDeepToParse).failure?.path == "$")
        // json_object: exactly one JSON object.
        let object = try #require(try OutputFormat.of(Self.json(#"{"type":"json_object"}"#), path: "f"))
        #expect(object.check(#"{"x":[1]}"#) == .success(Self.json(#"{"x":[1]}"#)))
        #expect(object.check("[1]").failure?.message == "expected one JSON object, found array")
        #expect(object.check("{} {}").failure != nil)
        // text (or no format): not checked.
        #expect(try OutputFormat.of(Self.json(#"{"type":"text"}"#), path: "f") == nil)
        #expect(try OutputFormat.of(nil, path: "f") == nil)
        // A json_schema format without its schema.
        #expect(throws: APIError.self) { try OutputFormat.of(Self.json(#"{"type":"json_schema","json_schema":{"name":"n"}}"#), path: "f") }
    }

    @Test func aPatternTestsAtMostItsBoundOfInput() throws {
        let schema = try JSONSchema(Self.json(#"{"pattern":"a"}"#), path: "s")
        #expect(schema.validate(.string(String(repeating: "a", count: 65_536))) == nil)
        #expect(schema.validate(.string(String(repeating: "a", count: 65_537)))?.message.contains("at most 65536") == true)
    }

    @Test(arguments: [
        "^(a+)+$", "(a*)*", "(a|a)+", "(a|aa)*", "(.*)*", "((ab)+)+", "((ab)?)+", "(x(a|b))*", "(?:a+){2,}", "(a+){2}", "(\\d+)*$", "([a-z]+)*",
    ])
    func aPatternThatCanBacktrackExponentiallyIsRefusedWithItsPath(pattern: String) {
        let schema: JSONValue = .object(["properties": .object(["code": .object(["type": "string", "pattern": .string(pattern)])])])
        do {
            _ = try JSONSchema(schema, path: "s")
            Issue.record("accepted \(pattern)")
        } catch {
            #expect(error.kind == .invalidCommand)
            #expect(error.path == "s.properties.code.pattern")
            #expect(error.message.contains("nested repetition"), "\(error.message)")
        }
    }

    @Test func backreferencesAndLookaroundAreRefused() {
        for (pattern, piece) in [(#"(a)\1"#, "backreference"), (#"(?<x>a)\k<x>"#, "backreference"), ("a(?=b)", "lookahead"), ("a(?!b)", "lookahead"),
            ("(?<=a)b", "lookbehind"), ("(?<!a)b", "lookbehind"), ("(?x)(a# )\n+)+$", "extended"), ("(?ix:a)", "extended")]
        {
            #expect(throws: APIError.self) { try JSONSchema(.object(["pattern": .string(pattern)]), path: "s") }
            #expect(SchemaPattern.problem(pattern)?.contains(piece) == true, "\(pattern)")
        }
    }

    @Test func ordinaryPatternsStillWork() throws {
        let cases: [(String, [String], [String])] = [
            (#"^[A-Z]{2}-\d{4}$"#, ["AB-1234"], ["AB-123", "ab-1234"]),
            (#"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$"#, ["x.y@example.com"], ["x@y", "@example.com"]),
            ("^(ab)+$", ["ab", "ababab"], ["aba", ""]),
            (#"^\d+(\.\d+)?$"#, ["3", "3.14"], ["3.", ".5"]),
            (#"^(red|green)?[(+*)]{1,3}\Q(a+)+\E$"#, ["red+(a+)+", "((a+)+"], ["red+aa"]),
            ("^(?:[a-c]|x)$", ["b", "x"], ["d"]),
            (#"^(?<year>\d{4})-(?i:[a-z]{3})$"#, ["2026-Dec"], ["26-Dec"]),
        ]
        for (pattern, good, bad) in cases {
            #expect(SchemaPattern.problem(pattern) == nil, "\(pattern)")
            let schema = try JSONSchema(.object(["type": "string", "pattern": .string(pattern)]), path: "s")
            // Compiled once, when the schema was checked.
            #expect(schema.patterns.regexes[pattern] != nil)
            for text in good { #expect(schema.validate(.string(text)) == nil, "\(pattern) \(text)") }
            for text in bad { #expect(schema.validate(.string(text)) != nil, "\(pattern) \(text)") }
        }
    }

    @Test func aTestedStringAndAnEnumAreChargedToTheStepBudget() throws {
        let pattern = try JSONSchema(Self.json(#"{"type":"string","pattern":"^a*$"}"#), path: "s")
        let long = JSONValue.string(String(repeating: "a", count: 5_000))
        #expect(pattern.validate(long, against: pattern.root, maxSteps: 6_000) == nil)
        #expect(pattern.validate(long, against: pattern.root, maxSteps: 4_000)?.message.contains("more than 4000 steps") == true)
        let options = (0..<5_000).map { JSONValue.int($0) }
        let enumeration = try JSONSchema(.object(["enum": .array(options)]), path: "s")
        #expect(enumeration.validate(.int(4_999), against: enumeration.root, maxSteps: 6_000) == nil)
        #expect(enumeration.validate(.int(4_999), against: enumeration.root, maxSteps: 4_000)?.message.contains("more than 4000 steps") == true)
    }

    @Test(arguments: [
        ##"{"$defs":{"x":{"enum":[{"if":{}}]}},"$ref":"#/$defs/x/enum/0"}"##,
        ##"{"properties":{"a":{"const":{"not":{}}},"b":{"$ref":"#/properties/a/const"}}}"##,
        ##"{"properties":{"a":{"type":"string"}},"$ref":"#/properties/a"}"##,
        ##"{"$defs":{"x":{"$defs":{"y":{}}}},"$ref":"#/$defs/x/$defs/y"}"##,
        ##"{"$ref":"#/"}"##,
    ])
    func aReferenceOnlyReachesTheRootOrADefinition(schema: String) {
        do {
            _ = try JSONSchema(Self.json(schema), path: "s")
            Issue.record("accepted \(schema)")
        } catch {
            #expect(error.kind == .invalidCommand && error.path?.hasSuffix(".$ref") == true, "\(error)")
            #expect(error.message.contains("only local references to the root or to a definition"), "\(error.message)")
        }
        #expect(JSONSchema.isDefinitionReference("#") && JSONSchema.isDefinitionReference("#/$defs/a") && JSONSchema.isDefinitionReference("#/definitions/a~1b"))
    }
}
