import CommandPipeline
import Foundation
import Testing

@Suite struct UploadStageTests {
    func placeholderCommand(_ dir: URL, files: [String], tasks: [UploadTask] = [], ephemeral: Bool = false) -> PlannedCommand {
        let parts = files.map { APIPart.filePlaceholder(FilePlaceholder(path: dir.appendingPathComponent($0).path, ephemeral: ephemeral)) }
        return PlannedCommand(id: "u", plan: ExecutionPlan(calls: [APICall(model: "m", parts: parts + [.text("q")])], uploadTasks: tasks))
    }

    @Test func uploadsReplacePlaceholdersWithReferences() async throws {
        let dir = try temporaryDirectory(files: ["a.pdf": "A"])
        let provider = UploadingProvider(base: RecordingProvider(clock: ManualClock()))
        let state = ExecutionState(command: placeholderCommand(dir, files: ["a.pdf"]))
        let stage = UploadStage()
        #expect(stage.applies(to: state))
        let next = try await stage.run(state, provider: provider)
        #expect(next.calls[0].parts[0] == .fileRef(FileReference(uri: "test://a.pdf", mimeType: "application/pdf")))
        #expect(next.telemetry.uploads == UploadCounts(performed: 1))
        #expect(state.calls[0].parts[0].placeholder != nil, "the input state is unchanged")
    }

    @Test func optionalUploadsWithoutTheCapabilityLeaveThePartAsItWas() async throws {
        let dir = try temporaryDirectory(files: ["a.pdf": "A"])
        let state = ExecutionState(command: placeholderCommand(dir, files: ["a.pdf"]))
        let next = try await UploadStage().run(state, provider: RecordingProvider(clock: ManualClock()))
        #expect(next.calls == state.calls)
        #expect(next.telemetry.uploads == UploadCounts(skipped: 1))
    }

    @Test func aRequiredUploadWithoutTheCapabilityFailsNamingThePart() async throws {
        let dir = try temporaryDirectory(files: ["a.pdf": "A"])
        let state = ExecutionState(command: placeholderCommand(dir, files: ["a.pdf"], tasks: [UploadTask(partIndex: 0, required: true)]))
        await #expect(throws: APIError.self) { try await UploadStage().run(state, provider: RecordingProvider(clock: ManualClock())) }
        do {
            _ = try await UploadStage().run(state, provider: RecordingProvider(clock: ManualClock()))
        } catch {
            #expect(error.kind == .capabilityMissing)
            #expect(error.path == "plan.calls[0].parts[0]")
            #expect(error.message.contains("a.pdf"))
        }
    }

    @Test func explicitTasksWinOverImplicitPlaceholders() async throws {
        let dir = try temporaryDirectory(files: ["a.pdf": "A", "b.pdf": "B"])
        let provider = UploadingProvider(base: RecordingProvider(clock: ManualClock()))
        let state = ExecutionState(command: placeholderCommand(dir, files: ["a.pdf", "b.pdf"], tasks: [UploadTask(partIndex: 1)]))
        let next = try await UploadStage().run(state, provider: provider)
        #expect(next.calls[0].parts[0].placeholder != nil)
        #expect(next.calls[0].parts[1] == .fileRef(FileReference(uri: "test://b.pdf", mimeType: "application/pdf")))
        #expect(provider.recorder.snapshot.uploads.count == 1)
    }

    @Test func distinctFilesUploadConcurrently() async throws {
        let names = (0..<16).map { "f\($0).txt" }
        let dir = try temporaryDirectory(files: Dictionary(uniqueKeysWithValues: names.map { ($0, $0) }))
        let clock = ManualClock()
        let provider = UploadingProvider(base: RecordingProvider(clock: clock), uploadLatency: .milliseconds(50))
        let state = ExecutionState(command: placeholderCommand(dir, files: names))
        let task = Task { try await UploadStage().run(state, provider: provider) }
        await clock.waitForSleepers(16)
        #expect(provider.recorder.snapshot.maxInFlight == 16, "all 16 uploads were in flight together")
        clock.advance(by: .milliseconds(50))
        let next = try await task.value
        #expect(next.telemetry.uploads.performed == 16)
    }

    @Test func aFileNamedTwiceIsUploadedOnce() async throws {
        let dir = try temporaryDirectory(files: ["a.pdf": "A"])
        let path = dir.appendingPathComponent("a.pdf").path
        let provider = UploadingProvider(base: RecordingProvider(clock: ManualClock()))
        let plan = ExecutionPlan(
            calls: [APICall(model: "m", parts: [.filePlaceholder(FilePlaceholder(path: path)), .text("1")]),
                    APICall(model: "m", parts: [.filePlaceholder(FilePlaceholder(path: path)), .text("2")])],
            sharedParts: [.filePlaceholder(FilePlaceholder(path: path))])
        let next = try await UploadStage().run(ExecutionState(command: PlannedCommand(id: "x", plan: plan)), provider: provider)
        #expect(provider.recorder.snapshot.uploads == [path])
        #expect(next.telemetry.uploads.performed == 1)
        #expect(next.sharedParts[0] == next.calls[1].parts[0])

        // A later command through the same registry reuses the upload.
        let engine = PipelineEngine(provider: provider)
        let first = await engine.execute(PlannedCommand(id: "1", plan: plan))
        let second = await engine.execute(PlannedCommand(id: "2", plan: plan))
        #expect(first.success?.telemetry.uploads == UploadCounts(performed: 1))
        #expect(second.success?.telemetry.uploads == UploadCounts(reused: 1))
    }

    @Test func theStageHandsEphemeralFilesOnInsteadOfDeletingThem() async throws {
        let dir = try temporaryDirectory(files: ["a.txt": "A", "b.txt": "B"])
        let provider = UploadingProvider(base: RecordingProvider(clock: ManualClock()))
        let state = ExecutionState(command: placeholderCommand(dir, files: ["a.txt", "b.txt", "a.txt"], ephemeral: true))
        let next = try await UploadStage(resolver: FileResolver(confinedTo: dir.path)).run(state, provider: provider)
        #expect(next.ephemeralFiles.map { URL(fileURLWithPath: $0.path).lastPathComponent }.sorted() == ["a.txt", "b.txt"], "each file once")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("a.txt").path), "the engine deletes, after success")
    }

    @Test func aMissingFileFailsWithUploadFailedNamingThePath() async throws {
        let dir = try temporaryDirectory(files: [:])
        let engine = PipelineEngine(provider: MockProvider.make())
        let result = await engine.execute(placeholderCommand(dir, files: ["nope.pdf"]))
        let error = try #require(result.failure)
        #expect(error.kind == .uploadFailed)
        #expect(error.message.contains("nope.pdf"))
        #expect(error.path == "plan.calls[0].parts[0]")
    }

    @Test func confinedPathsCannotLeaveTheRoot() async throws {
        let dir = try temporaryDirectory(files: ["inside.txt": "ok"])
        let outside = try temporaryDirectory(files: ["secret.txt": "s"])
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("link.txt").path, withDestinationPath: outside.appendingPathComponent("secret.txt").path)
        let resolver = FileResolver(confinedTo: dir.path)
        #expect((try? resolver.resolve("inside.txt").get()) == dir.appendingPathComponent("inside.txt").standardizedFileURL.path)
        #expect((try? resolver.resolve("../x.txt").get()) == nil)
        #expect((try? resolver.resolve(outside.appendingPathComponent("secret.txt").path).get()) == nil)
        #expect((try? resolver.open("link.txt").get()) == nil, "the link is refused on the descriptor actually opened")
        #expect((try? resolver.open("inside.txt").get())?.size == 2)

        let provider = UploadingProvider(base: RecordingProvider(clock: ManualClock()))
        let stage = UploadStage(resolver: resolver)
        let cmd = PlannedCommand(id: "x", plan: ExecutionPlan(calls: [APICall(model: "m", parts: [.filePlaceholder(FilePlaceholder(path: "../etc/passwd"))])]))
        do {
            _ = try await stage.run(ExecutionState(command: cmd), provider: provider)
            Issue.record("an escaping path was accepted")
        } catch {
            #expect(error.kind == .invalidCommand)
            #expect(error.path == "plan.calls[0].parts[0].path")
        }
        #expect(provider.recorder.snapshot.uploads.isEmpty, "nothing was uploaded")
    }
}
