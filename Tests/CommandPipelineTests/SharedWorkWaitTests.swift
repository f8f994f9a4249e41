import CommandPipeline
import CommandPipelineTesting
import Synchronization
import Testing

/// Issue 27: what a command holds while shared work (an upload, a cache creation: one
/// `SingleFlight`) is made for it. The maker keeps its slot through its retries' backoffs — its
/// lender is never told — so the commands waiting for the work may hold theirs; a waiter tells
/// its lender, so the CLI lends the waiter's slot for the wait and has it back before it goes on.
@Suite struct SharedWorkWaitTests {
    /// Records what the engine tells a command's lender.
    final class RecordingLender: BackoffLender {
        private let events = Mutex<[String]>([])
        func backoffStarted() { events.withLock { $0.append("lent") } }
        func backoffEnded() async { events.withLock { $0.append("back") } }
        var log: [String] { events.withLock { $0 } }
    }

    /// Uploads and cache creations numbered from 1: the numbers in `failing` fail with a retryable
    /// 503; the one numbered `gated` waits for `gate` (and fails as cancelled if its task is).
    final class FlakyProvider: UploadsCapability, CachingCapability {
        let failing: Set<Int>
        let gated: Int?
        let gate = Latch()
        let requests = Atomic<Int>(0)

        init(failing: Set<Int> = [], gated: Int? = nil) {
            self.failing = failing
            self.gated = gated
        }

        private func request() async throws -> Int {
            let n = requests.add(1, ordering: .relaxed).newValue
            if n == gated, !(await gate.wait()) { throw CancellationError() }
            if failing.contains(n) { throw APIError(.providerError, "request \(n): 503", retryable: true, code: "unavailable") }
            return n
        }

        func upload(_ file: FileUpload) async throws -> FileReference {
            FileReference(uri: "test://\(try await request())", mimeType: file.mimeType)
        }

        func createCache(_ context: GenerationRequest, key: String, ttlSeconds: Int) async throws -> CacheReference {
            CacheReference(id: "cache-\(try await self.request())", key: key, model: context.model)
        }

        func cache(forKey key: String) async throws -> CacheReference? { nil }
    }

    /// Three attempts, no delay (the clock never has to move).
    let retrier = Retrier(policy: RetryPolicy(maxAttempts: 3, baseDelay: .zero, jitter: 0), clock: ManualClock(), random: { 0 })
    let file = FileUpload(path: "/nonexistent/shared.pdf", mimeType: "application/pdf")
    let cacheRequest = CacheRequest(key: "K", model: "m", systemInstruction: nil, parts: [.text("context")], ttlSeconds: 60)

    /// Yields until `condition` holds, at most `maxYields` times: a test fails rather than hangs.
    func eventually(maxYields: Int = 2_000_000, _ condition: () -> Bool) async -> Bool {
        var yields = 0
        while !condition() {
            if yields >= maxYields { return false }
            yields += 1
            await Task.yield()
        }
        return true
    }

    @Test func theMakerOfAnUploadKeepsItsSlotThroughItsRetries() async throws {
        let provider = FlakyProvider(failing: [1, 2])
        let lender = RecordingLender()
        let lease = await BackoffScope.$lender.withValue(lender) {
            await FileRegistry().reference(for: file, using: provider, retrier: retrier)
        }
        #expect(try lease.get().reference.uri == "test://3", "retried twice, then made")
        #expect(lender.log.isEmpty, "shared work never lends its maker's slot: its waiters may hold theirs")

        // The same retries outside shared work do lend (a generate call's).
        let control = RecordingLender()
        let outcome = await BackoffScope.$lender.withValue(control) {
            await retrier.run(cancelled: APIError(.cancelled, "cancelled")) { n -> Result<Int, APIError> in
                n < 3 ? .failure(APIError(.providerError, "503", retryable: true)) : .success(n)
            }
        }
        #expect(try outcome.result.get() == 3)
        #expect(control.log == ["lent", "back", "lent", "back"])
    }

    @Test func theMakerOfACacheKeepsItsSlotThroughItsRetries() async throws {
        let provider = FlakyProvider(failing: [1, 2])
        let lender = RecordingLender()
        let lease = try await BackoffScope.$lender.withValue(lender) {
            try await CacheRegistry(clock: ManualClock()).lease(for: cacheRequest, using: provider, retrier: retrier)
        }
        #expect(lease.reference.id == "cache-3")
        #expect(lender.log.isEmpty, "shared work never lends its maker's slot")
    }

    /// A command waiting for an upload another command makes lends for the whole wait, and has
    /// its slot back before it goes on with the reference.
    @Test func aWaiterLendsForTheWaitAndIsBackBeforeItGoesOn() async throws {
        let provider = FlakyProvider(gated: 1)
        let registry = FileRegistry()
        let (file, retrier) = (self.file, self.retrier)
        let maker = Task { await registry.reference(for: file, using: provider, retrier: retrier) }
        #expect(await eventually { provider.requests.load(ordering: .relaxed) == 1 }, "the maker is uploading")
        let lender = RecordingLender()
        let waiter = Task {
            await BackoffScope.$lender.withValue(lender) { await registry.reference(for: file, using: provider, retrier: retrier) }
        }
        #expect(await eventually { lender.log == ["lent"] }, "the waiter gave its slot away for the wait: \(lender.log)")
        provider.gate.open()
        let waited = try await waiter.value.get()
        #expect(lender.log == ["lent", "back"], "and had it back before going on")
        #expect(waited.reused && waited.reference.uri == "test://1", "one upload for both")
        #expect(try await maker.value.get().reused == false)
        #expect(provider.requests.load(ordering: .relaxed) == 1)
    }

    /// The same for a cache another command creates.
    @Test func aCacheWaiterLendsForTheWaitAndIsBackBeforeItGoesOn() async throws {
        let provider = FlakyProvider(gated: 1)
        let registry = CacheRegistry(clock: ManualClock())
        let (request, retrier) = (cacheRequest, self.retrier)
        let maker = Task { try await registry.lease(for: request, using: provider, retrier: retrier) }
        #expect(await eventually { provider.requests.load(ordering: .relaxed) == 1 })
        let lender = RecordingLender()
        let waiter = Task { try await BackoffScope.$lender.withValue(lender) { try await registry.lease(for: request, using: provider, retrier: retrier) } }
        #expect(await eventually { lender.log == ["lent"] }, "\(lender.log)")
        provider.gate.open()
        let waited = try await waiter.value
        #expect(lender.log == ["lent", "back"])
        #expect(waited.reference.id == "cache-1" && !waited.created)
        #expect(try await maker.value.created)
    }

    /// The maker's command is cancelled (its deadline): the waiter takes the work over — with its
    /// slot back first, and without lending it through the retries of the work it now makes.
    @Test func aWaiterThatTakesOverTheWorkHasItsSlotBackAndKeepsIt() async throws {
        let provider = FlakyProvider(failing: [2], gated: 1)
        let registry = FileRegistry()
        let (file, retrier) = (self.file, self.retrier)
        let maker = Task { await registry.reference(for: file, using: provider, retrier: retrier) }
        #expect(await eventually { provider.requests.load(ordering: .relaxed) == 1 })
        let lender = RecordingLender()
        let waiter = Task {
            await BackoffScope.$lender.withValue(lender) { await registry.reference(for: file, using: provider, retrier: retrier) }
        }
        #expect(await eventually { lender.log == ["lent"] })
        maker.cancel()
        #expect(try await waiter.value.get().reference.uri == "test://3", "the waiter made it: request 2 failed, 3 succeeded")
        #expect(lender.log == ["lent", "back"], "back in its slot before making the work, and no lending in its retry")
        if case .success = await maker.value { Issue.record("the cancelled maker succeeded") }
    }
}

extension SharedWorkWaitTests {
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .releasing) }
        var isSet: Bool { value.load(ordering: .acquiring) }
    }

    /// A waiter whose own task is cancelled (its deadline) stops waiting at once, back in its slot,
    /// and the work goes on for whoever else wants it.
    @Test func aCancelledWaiterStopsWaitingAtOnceAndTheWorkGoesOn() async throws {
        let provider = FlakyProvider(gated: 1)
        let registry = FileRegistry()
        let (file, retrier) = (self.file, self.retrier)
        let maker = Task { await registry.reference(for: file, using: provider, retrier: retrier) }
        #expect(await eventually { provider.requests.load(ordering: .relaxed) == 1 })
        let lender = RecordingLender()
        let ended = Flag()
        let waiter = Task {
            let lease = await BackoffScope.$lender.withValue(lender) { await registry.reference(for: file, using: provider, retrier: retrier) }
            ended.set()
            return lease
        }
        #expect(await eventually { lender.log == ["lent"] })
        waiter.cancel()
        let stoppedAtOnce = await eventually { ended.isSet }
        #expect(stoppedAtOnce, "the cancelled waiter still waits for the work")
        if !stoppedAtOnce { provider.gate.open() }   // so that the test ends
        let stopped = await waiter.value
        guard case .failure(let error) = stopped else {
            Issue.record("the cancelled waiter got a value while the work was still in flight")
            return
        }
        #expect(error.kind == .cancelled)
        #expect(lender.log == ["lent", "back"])
        provider.gate.open()
        #expect(try await maker.value.get().reference.uri == "test://1", "the work went on")
        #expect(try await registry.reference(for: file, using: provider, retrier: retrier).get().reused)
        #expect(provider.requests.load(ordering: .relaxed) == 1)
    }

    /// A task cancelled before it even starts waiting does not wait.
    @Test func aWaiterCancelledBeforeItWaitsDoesNotWait() async throws {
        let provider = FlakyProvider(gated: 1)
        let registry = FileRegistry()
        let (file, retrier) = (self.file, self.retrier)
        let maker = Task { await registry.reference(for: file, using: provider, retrier: retrier) }
        #expect(await eventually { provider.requests.load(ordering: .relaxed) == 1 })
        let ended = Flag()
        let waiter = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            let lease = await registry.reference(for: file, using: provider, retrier: retrier)
            ended.set()
            return lease
        }
        let stoppedAtOnce = await eventually { ended.isSet }
        #expect(stoppedAtOnce, "the cancelled waiter waits for the work")
        if !stoppedAtOnce { provider.gate.open() }
        if case .success = await waiter.value { Issue.record("a cancelled waiter got the value") }
        provider.gate.open()
        _ = await maker.value
    }
}
