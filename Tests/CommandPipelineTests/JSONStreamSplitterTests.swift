import CommandPipeline
import Testing

@Suite struct JSONStreamSplitterTests {
    struct Split {
        var text: String
        var parsed: Bool
        var line: Int
        var error: JSONStreamSplitter.PieceError?
    }

    /// Splits `bytes` fed in chunks of `chunk` bytes.
    func split(bytes: [UInt8], chunk: Int = 3, limit: Int = JSONStreamSplitter.maximumValueBytes) -> [Split] {
        var splitter = JSONStreamSplitter(maximumValueBytes: limit)
        var pieces: [JSONStreamSplitter.Piece] = []
        var i = 0
        while i < bytes.count {
            splitter.feed(Array(bytes[i..<min(i + chunk, bytes.count)])) { pieces.append($0) }
            i += chunk
        }
        splitter.finish { pieces.append($0) }
        return pieces.map { piece in
            let result = piece.parse()
            let error: JSONStreamSplitter.PieceError? = if case .failure(let e) = result { e } else { nil }
            return Split(text: String(decoding: piece.bytes, as: UTF8.self), parsed: error == nil, line: piece.line, error: error)
        }
    }

    func split(_ text: String, chunk: Int = 3) -> [Split] { split(bytes: Array(text.utf8), chunk: chunk) }

    @Test(arguments: [1, 2, 7, 4096])
    func jsonLinesPrettyAndConcatenatedValuesAllSplit(chunk: Int) {
        let input = "{\"a\":1}\n{\"b\":\n  {\"c\":\"}{\"}\n}{\"d\":[1,2]} {\"e\":\"\\\"\"}\n"
        let pieces = split(input, chunk: chunk)
        #expect(pieces.map(\.text) == ["{\"a\":1}", "{\"b\":\n  {\"c\":\"}{\"}\n}", "{\"d\":[1,2]}", "{\"e\":\"\\\"\"}"])
        #expect(pieces.allSatisfy { $0.parsed })
        #expect(pieces.map(\.line) == [1, 2, 4, 4])
    }

    /// `json.dumps(list)` writes one line: a broken element ends at its own `,` or `]`
    /// (brackets and strings followed), so the elements after it still come out.
    @Test(arguments: [1, 3, 4096])
    func aBrokenElementOfAOneLineArrayLosesNoOtherElement(chunk: Int) {
        let nan = split(#"[{"p":"a","t":NaN},{"p":"b"},{"p":"c"}]"# + "\n", chunk: chunk)
        #expect(nan.map(\.parsed) == [false, true, true])
        #expect(nan.dropFirst().map(\.text) == [#"{"p":"b"}"#, #"{"p":"c"}"#])
        let nested = split(#"[{"a":1,,"b":{"c":[1,{"d":"],}"}]}},{"e":2}]"# + "\n" + #"{"f":3}"#, chunk: chunk)
        #expect(nested.map(\.parsed) == [false, true, true])
        #expect(nested.dropFirst().map(\.text) == [#"{"e":2}"#, #"{"f":3}"#])
        let last = split(#"[{"a":1},{"b":tru}]"# + "\n" + #"{"c":3}"#, chunk: chunk)
        #expect(last.map(\.parsed) == [true, false, true], "the broken last element ends at the array's `]`")
    }

    @Test func aTopLevelArrayIsAListOfValues() {
        let pieces = split("[\n{\"a\":1},\n{\"b\":2}\n]\n{\"c\":3}")
        #expect(pieces.map(\.text) == ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"])
    }

    @Test(arguments: [1, 5, 4096])
    func scalarsAndNestedArraysSplitAsJqReadsThem(chunk: Int) {
        let pieces = split("1 -2.5e+3\ntrue null\"s\"[[1],{\"a\":[]}]\n0", chunk: chunk)
        // The top-level array is a list: its elements are the values.
        #expect(pieces.map(\.text) == ["1", "-2.5e+3", "true", "null", "\"s\"", "[1]", "{\"a\":[]}", "0"])
        #expect(pieces.allSatisfy { $0.parsed })
    }

    /// Python's `json.dumps(…, indent=0)` puts every nested `{` in column 0: still one value each.
    @Test(arguments: [1, 3, 4096])
    func indentZeroOutputIsOneValueEach(chunk: Int) {
        let value = "{\n\"id\": \"a\",\n\"plan\": {\n\"calls\": [\n{\n\"model\": \"m\",\n\"parts\": [\n{\n\"type\": \"text\",\n\"text\": \"x\"\n}\n]\n}\n]\n}\n}"
        let pieces = split(value + "\n" + value.replacingOccurrences(of: "\"a\"", with: "\"b\"") + "\n", chunk: chunk)
        #expect(pieces.count == 2)
        #expect(pieces.allSatisfy { $0.parsed })
        #expect(pieces.map(\.line) == [1, 17])
    }

    @Test func aUTF8ByteOrderMarkAtTheStartIsSkipped() {
        let pieces = split(bytes: [0xEF, 0xBB, 0xBF] + Array("{\"a\":1}\n{\"b\":2}".utf8), chunk: 1)
        #expect(pieces.map(\.text) == ["{\"a\":1}", "{\"b\":2}"])
        #expect(pieces.allSatisfy { $0.parsed })
        // Not at the start, a BOM is garbage.
        let later = split(bytes: Array("{\"a\":1}\n".utf8) + [0xEF, 0xBB, 0xBF] + Array("\n{\"b\":2}".utf8))
        #expect(later.map(\.parsed) == [true, false, true])
    }

    @Test func garbageIsOneRunUpToALineThatCanStartACommand() {
        let pieces = split("{\"a\":1}\nthis is not json\nneither is this\n  {\"b\":2}\n")
        #expect(pieces.count == 3)
        #expect(pieces[1].parsed == false)
        #expect(pieces[1].text.hasPrefix("this is not json"))
        #expect(pieces[1].error?.message.contains("line 2, byte offset 8") == true)
        #expect(pieces[2].text == "{\"b\":2}")
    }

    @Test func aStringEndingInABackslashDoesNotSwallowTheNextCommand() {
        let pieces = split("{\"id\":\"x\",\"prompt\":\"a\\\n{\"id\":\"ok\"}\n")
        #expect(pieces.map(\.parsed) == [false, true])
        #expect(pieces[1].text == "{\"id\":\"ok\"}")
    }

    @Test func anArrayAfterABrokenObjectStillComesOut() {
        let pieces = split("{\"a\": tru}\n[{\"b\":1},{\"c\":2}]\n{\"d\":3}\n")
        #expect(pieces.map(\.text).dropFirst() == ["{\"b\":1}", "{\"c\":2}", "{\"d\":3}"])
        #expect(pieces.map(\.parsed) == [false, true, true, true])
    }

    @Test func recoveryStartsOnlyAtARealSyntaxError() {
        // An unterminated string breaks at its line end; a value missing its closer breaks where
        // the next line's `{` cannot continue it, and that `{` starts the next value.
        let pieces = split("{\"a\": \"unterminated\n{\"b\":2}\n{\"c\": 1\n{\"d\":4}\n{\"e\": [1,\n{\"f\":5}\n")
        #expect(pieces.map(\.parsed) == [false, true, false, true, false])
        #expect(pieces[1].text == "{\"b\":2}")
        #expect(pieces[3].text == "{\"d\":4}")
        // `{"f":5}` is a valid element of the open array: the truncation is found at the end.
        #expect(pieces[4].error?.message.contains("unexpected end of input") == true)
    }

    @Test func aBrokenPrettyPrintedValueIsOneRecord() {
        let input = """
        {
          "id": "bad",
          "prompt": "a\u{01}b",
          "model": "m",
          "config": {
            "x": 1
          }
        }
        {
          "id": "good"
        }
        """
        let pieces = split(input)
        #expect(pieces.map(\.parsed) == [false, true])
        #expect(pieces[1].line == 9)
    }

    @Test func insideATopLevelArrayTheNextElementsStillComeOut() {
        let input = "[\n  {\"a\": 1,,\n  {\"b\": 2},\n  {\"c\": [}\n  ,{\"d\": 4}\n]\n{\"e\": 5}\n"
        let pieces = split(input)
        #expect(pieces.map(\.parsed) == [false, true, false, true, true])
        #expect(pieces.filter(\.parsed).map(\.text) == ["{\"b\": 2}", "{\"d\": 4}", "{\"e\": 5}"])
    }

    @Test func errorsGiveAbsoluteOffsetAndLine() {
        let pieces = split("{\"ok\":1}\n{\"a\":\n  tru}\n")
        guard let error = pieces[1].error else {
            Issue.record("the broken value parsed")
            return
        }
        #expect(error.line == 3)
        #expect(error.offset == 17)
        #expect(error.message.contains("line 3, byte offset 17"))
    }

    @Test func truncatedInputAtTheEndIsReported() {
        let pieces = split("{\"a\":1}\n{\"b\":")
        #expect(pieces.map(\.parsed) == [true, false])
        #expect(pieces[1].error?.message.contains("unexpected end of input") == true)
    }

    @Test func numbersAndLiteralsMustEndAtADelimiter() {
        let pieces = split("12x\n{\"a\":1}\ntruex\n{}\nnul\n{}\n-\n{}\n01\n{}\n1.\n[2 ]")
        #expect(pieces.map(\.parsed) == [false, true, false, true, false, true, false, true, false, true, false, true])
        // Bad words at the top level are garbage runs shown as text; up to the next `{` or `[` line.
        #expect(pieces[2].error?.message.contains("unexpected text 'truex'") == true)
        #expect(split("truex\nnul\n-\n{}").map(\.parsed) == [false, true])
        // Inside a value, the error names the token's start.
        #expect(split("{\"a\": 12x}")[0].error?.message.contains("byte offset 6: invalid number") == true)
    }

    @Test func aValueOverTheSizeLimitIsOneFailedPieceWithAPreview() {
        let big = "{\"text\":\"" + String(repeating: "x", count: 10_000) + "\",\"n\":[1,2,{\"k\":\"}\"}]}"
        let pieces = split(bytes: Array((big + "\n{\"b\":2}\n").utf8), chunk: 512, limit: 4096)
        #expect(pieces.map(\.parsed) == [false, true])
        #expect(pieces[0].text.utf8.count <= JSONStreamSplitter.previewBytes)
        #expect(pieces[0].error?.message.contains("larger than 4096 bytes") == true)
        // One chunk holding it all is cut the same way.
        #expect(split(bytes: Array(big.utf8), chunk: 1 << 20, limit: 4096).map(\.parsed) == [false])
    }

    @Test func endlessGarbageKeepsOnlyAPreview() {
        let pieces = split(bytes: [UInt8](repeating: 0, count: 1 << 20), chunk: 65536)
        #expect(pieces.count == 1)
        #expect(pieces[0].parsed == false)
        #expect(pieces[0].text.utf8.count <= JSONStreamSplitter.previewBytes)
    }

    @Test func nestingDeeperThanTheLimitIsOneErrorAndReadingGoesOn() {
        let deep = String(repeating: "[", count: 100_000)
        let pieces = split("{\"a\":" + deep + "\n{\"b\":2}\n", chunk: 4096)
        #expect(pieces.map(\.parsed) == [false, true])
        #expect(pieces[0].error?.message.contains("nesting deeper than 512") == true)
        let limit = String(repeating: "[", count: 511) + String(repeating: "]", count: 511)
        #expect(split("{\"a\":" + limit + "}", chunk: 4096).map(\.parsed) == [true])
    }

    @Test func invalidUTF8IsAnErrorWithItsOffset() {
        let bytes = Array("{\"a\":1}\n{\"p\":\"ok ".utf8) + [0xC3, 0x28] + Array("\"}\n{\"b\":\"é\"}".utf8)
        let pieces = split(bytes: bytes)
        #expect(pieces.map(\.parsed) == [true, false, true])
        #expect(pieces[1].error?.offset == 17)
        #expect(pieces[1].error?.message.contains("invalid UTF-8") == true)
        // Overlong forms and surrogates are invalid too.
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF]] {
            let pieces = split(bytes: Array("{\"p\":\"".utf8) + bad + Array("\"}".utf8))
            #expect(pieces.map(\.parsed) == [false], "\(bad)")
        }
    }

    @Test func duplicateKeysAreAnErrorNamingTheKeyAndItsPath() {
        let pieces = split(#"{"model":"a","plan":{"calls":[{"config":{"seed":1,"seed":2}}]}}"#)
        #expect(pieces[0].parsed == false)
        #expect(pieces[0].error?.path == "plan.calls[0].config.seed")
        #expect(pieces[0].error?.message.contains("duplicate key \"seed\"") == true)
        let top = split(#"{"model":"a","model":"b"}"#)
        #expect(top[0].error?.path == "model")
        // Many keys: the set-based check finds the duplicate too.
        let many = "{" + (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + ",\"k7\":0}"
        #expect(split(many)[0].error?.path == "k7")
        #expect(split(#"{"a":{"x":1},"b":{"x":1}}"#)[0].parsed)
    }

    /// Random valid JSON in random layouts, fed in random chunk sizes: the pieces are exactly the
    /// generated values (compared as parsed values).
    @Test func randomValidJSONSplitsIntoExactlyItsValues() throws {
        var rng = SeededRandom(seed: 0x5EED)
        for round in 0..<200 {
            var values: [String] = []
            var text = ""
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let value = randomValue(depth: 0, &rng)
                values.append(value)
                // Values touch only where jq can still tell them apart (not two numbers or words).
                let touching = value.hasSuffix("}") || value.hasSuffix("]") || value.hasSuffix("\"")
                text += value + (touching ? [" ", "\n", "", "\r\n", "\t"] : [" ", "\n", "\r\n", "\t"]).randomElement(using: &rng)!
            }
            let chunk = [1, 2, 3, 17, 4096].randomElement(using: &rng)!
            let pieces = split(text, chunk: chunk)
            let expected = try values.map { try JSONParser.parse($0) }
            let got = pieces.map { try? JSONParser.parse($0.text) }
            // A top-level array is a list of values: compare against its elements.
            let flattened = expected.flatMap { value -> [JSONValue?] in
                if case .array(let elements) = value { return elements.map { $0 } }
                return [value]
            }
            #expect(got == flattened, "round \(round): \(text)")
        }
    }

    /// Valid values with random bytes flipped, cut or inserted: the splitter never traps, every
    /// piece it hands over either parses or carries an error, and a valid line after a damaged one
    /// is never lost (JSON Lines: each line is one value, and damage stays on its line or is
    /// reported at the next line's `{`).
    @Test func damagedJSONLinesNeverTrapAndLoseNoUndamagedLine() {
        var rng = SeededRandom(seed: 0xF0221)
        let alphabet = Array("{}[]\",:\\ \n0123456789-+.eEtrufalsn\u{00}".utf8) + [0xC3, 0xFF, 0xEF, 0xBB, 0xBF]
        for round in 0..<300 {
            var lines: [[UInt8]] = []
            var intact: [Bool] = []
            for k in 0..<Int.random(in: 1...12, using: &rng) {
                var line = Array(#"{"id":"c\#(k)","model":"m","prompt":"p \#(k) é","metadata":{"a":[1,2.5,true,null]}}"#.utf8)
                let damaged = Bool.random(using: &rng)
                if damaged {
                    for _ in 0..<Int.random(in: 1...4, using: &rng) {
                        let at = Int.random(in: 0..<line.count, using: &rng)
                        switch Int.random(in: 0...2, using: &rng) {
                        case 0: line[at] = alphabet.randomElement(using: &rng)!
                        case 1: line.removeSubrange(at...)
                        default: line.insert(alphabet.randomElement(using: &rng)!, at: at)
                        }
                        if line.isEmpty { line = [UInt8(ascii: "x")] }
                    }
                }
                // A damaged line that still parses the same way is intact; one that grew a newline is not.
                let text = String(decoding: line, as: UTF8.self)
                let same = !line.contains(0x0a) && (try? JSONParser.parse(line, options: .strict)).map { _ in text == String(decoding: line, as: UTF8.self) } == true
                lines.append(line)
                intact.append(!damaged || same)
            }
            let input = lines.joined(separator: [0x0a]).map { $0 } + [0x0a]
            let pieces = split(bytes: input, chunk: [1, 7, 4096].randomElement(using: &rng)!)
            // Every undamaged line comes out as its own piece — unless the line before it is an
            // unfinished value (cut after a ':' or inside an array), of which it is a valid continuation.
            let parsedTexts = pieces.filter(\.parsed).map(\.text)
            for (k, (line, ok)) in zip(lines, intact).enumerated() where ok {
                if k > 0 && !intact[k - 1] && continues(lines[k - 1]) { continue }
                #expect(parsedTexts.contains(String(decoding: line, as: UTF8.self)), "round \(round): lost line \(k) in \(String(decoding: input, as: UTF8.self))")
            }
        }
    }

    /// Whether a JSON value can still go on after `line` (it ends unfinished, not broken).
    private func continues(_ line: [UInt8]) -> Bool {
        let pieces = split(bytes: line, chunk: 4096)
        return pieces.last?.error?.message.contains("unexpected end of input") == true
    }

    private func randomValue(depth: Int, _ rng: inout SeededRandom) -> String {
        let ws = { (rng: inout SeededRandom) in ["", " ", "\n", "\n\n  ", "\t"].randomElement(using: &rng)! }
        switch Int.random(in: depth > 3 ? 0...3 : 0...5, using: &rng) {
        case 0: return ["0", "-1", "12.5e-3", "1E+2", "-0.0", "123456789"].randomElement(using: &rng)!
        case 1: return ["true", "false", "null"].randomElement(using: &rng)!
        case 2, 3: return ["\"\"", "\"a\\\"b\"", "\"}{][,:\"", "\"\\u00e9\\\\\"", "\"é ünïcode 😀\""].randomElement(using: &rng)!
        case 4:
            let n = Int.random(in: 0...4, using: &rng)
            return "[" + ws(&rng) + (0..<n).map { _ in randomValue(depth: depth + 1, &rng) }.joined(separator: "," + ws(&rng)) + ws(&rng) + "]"
        default:
            let n = Int.random(in: 0...4, using: &rng)
            return "{" + ws(&rng) + (0..<n).map { "\"k\($0)\"" + ws(&rng) + ":" + ws(&rng) + randomValue(depth: depth + 1, &rng) }.joined(separator: "," + ws(&rng)) + ws(&rng) + "}"
        }
    }
}

