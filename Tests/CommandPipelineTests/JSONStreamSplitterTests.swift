import CommandPipeline
import Testing

@Suite struct JSONStreamSplitterTests {
    /// Splits `text` fed in chunks of `chunk` bytes; returns each piece's text and whether it parsed.
    func split(_ text: String, chunk: Int = 3) -> [(text: String, parsed: Bool, line: Int)] {
        var splitter = JSONStreamSplitter()
        var pieces: [JSONStreamSplitter.Piece] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            splitter.feed(Array(bytes[i..<min(i + chunk, bytes.count)])) { pieces.append($0) }
            i += chunk
        }
        splitter.finish { pieces.append($0) }
        return pieces.map { piece in
            let parsed = if case .success = piece.parse() { true } else { false }
            return (String(decoding: piece.bytes, as: UTF8.self), parsed, piece.line)
        }
    }

    @Test(arguments: [1, 2, 7, 4096])
    func jsonLinesPrettyAndConcatenatedValuesAllSplit(chunk: Int) {
        let input = "{\"a\":1}\n{\"b\":\n  {\"c\":\"}{\"}\n}{\"d\":[1,2]} {\"e\":\"\\\"\"}\n"
        let pieces = split(input, chunk: chunk)
        #expect(pieces.map(\.text) == ["{\"a\":1}", "{\"b\":\n  {\"c\":\"}{\"}\n}", "{\"d\":[1,2]}", "{\"e\":\"\\\"\"}"])
        #expect(pieces.allSatisfy { $0.parsed })
        #expect(pieces.map(\.line) == [1, 2, 4, 4])
    }

    @Test func aTopLevelArrayIsAListOfValues() {
        let pieces = split("[\n{\"a\":1},\n{\"b\":2}\n]\n{\"c\":3}")
        #expect(pieces.map(\.text) == ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"])
    }

    @Test func garbageYieldsOnePieceAndReadingResumes() {
        let pieces = split("{\"a\":1}\nthis is not json\n{\"b\":2}\n")
        #expect(pieces.count == 3)
        #expect(pieces[1].parsed == false)
        #expect(pieces[1].text.hasPrefix("this is not json"))
        #expect(pieces[2].text == "{\"b\":2}")
    }

    @Test func anUnterminatedValueIsCutAtTheNextLineStartingWithABrace() {
        let pieces = split("{\"a\": \"unterminated\n{\"b\":2}\n{\"c\": [1,\n{\"d\":4}\n")
        #expect(pieces.map(\.parsed) == [false, true, false, true])
        #expect(pieces[1].text == "{\"b\":2}")
        #expect(pieces[3].text == "{\"d\":4}")
    }

    @Test func errorsGiveAbsoluteOffsetAndLine() {
        var splitter = JSONStreamSplitter()
        var pieces: [JSONStreamSplitter.Piece] = []
        splitter.feed(Array("{\"ok\":1}\n{\"a\":\n  tru}\n".utf8)) { pieces.append($0) }
        splitter.finish { pieces.append($0) }
        guard case .failure(let error) = pieces[1].parse() else {
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
    }
}
