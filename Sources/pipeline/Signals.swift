import Dispatch
import Foundation

/// SIGINT and SIGTERM as an async stream, so the run loop can stop taking commands,
/// finish or cancel what is in flight, flush and exit 130. SIGPIPE is ignored: a closed
/// stdout shows up as a write error instead of killing the process.
enum Signals {
    static func interrupts() -> AsyncStream<Void> {
        signal(SIGPIPE, SIG_IGN)
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield() }
            source.resume()
            sources.append(source)
        }
        let keep = SourceBox(sources)
        continuation.onTermination = { _ in keep.cancel() }
        return stream
    }

    private final class SourceBox: @unchecked Sendable {
        // @unchecked: the array is written once in init and only read in `cancel`.
        let sources: [any DispatchSourceSignal]
        init(_ sources: [any DispatchSourceSignal]) { self.sources = sources }
        func cancel() { for source in sources { source.cancel() } }
    }
}
