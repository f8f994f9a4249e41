import Foundation

/// Turns file placeholders into provider file references.
///
/// - Explicit upload tasks win; without them every placeholder is an optional upload.
/// - Without `UploadsCapability`, a required upload fails with `capability_missing`
///   naming the part; optional ones stay placeholders (counted as `skipped`).
/// - Distinct files upload concurrently; a file named by several parts or calls, or by
///   an earlier command of the same engine, is uploaded once (`FileRegistry`).
/// - Each file is opened once, through the resolver (confinement and "regular file" are
///   checked on the descriptor), and read only through that descriptor.
/// - Ephemeral files are handed to the engine, which deletes them only once the whole
///   command has succeeded, and only inside an explicit files root.
package struct UploadStage: ExecutionStage {
    public let registry: FileRegistry
    public let resolver: FileResolver
    /// Uploads are retried like every request (`RetryPolicy.none` to not retry).
    public let retrier: Retrier

    public init(registry: FileRegistry = FileRegistry(), resolver: FileResolver = FileResolver(), retrier: Retrier = Retrier(policy: .none)) {
        self.registry = registry
        self.resolver = resolver
        self.retrier = retrier
    }

    public static let name = "upload"
    public var name: String { Self.name }

    public func applies(to state: ExecutionState) -> Bool {
        guard state.allowsUploads else { return false }
        if !state.plan.uploadTasks.isEmpty { return true }
        return state.sharedParts.contains(where: \.isPlaceholder) || state.calls.contains { $0.parts.contains(where: \.isPlaceholder) }
    }

    struct Target {
        var location: PartLocation
        var placeholder: FilePlaceholder
        var required: Bool
    }

    func targets(of state: ExecutionState) throws(APIError) -> [Target] {
        if state.plan.uploadTasks.isEmpty {
            var found: [Target] = []
            for (i, part) in state.sharedParts.enumerated() {
                if let p = part.placeholder { found.append(Target(location: PartLocation(call: nil, index: i), placeholder: p, required: false)) }
            }
            for (c, call) in state.calls.enumerated() {
                for (i, part) in call.parts.enumerated() {
                    if let p = part.placeholder { found.append(Target(location: PartLocation(call: c, index: i), placeholder: p, required: false)) }
                }
            }
            return found
        }
        return try state.plan.uploadTasks.enumerated().map { (n, task) throws(APIError) -> Target in
            let location: PartLocation
            let parts: [APIPart]
            switch task.callIndex {
            case nil:
                location = PartLocation(call: nil, index: task.partIndex)
                parts = state.sharedParts
            case let c?:
                guard state.calls.indices.contains(c) else {
                    throw APIError(.invalidCommand, "upload task names call \(c), but the plan has \(state.calls.count) call(s)", path: "plan.upload_tasks[\(n)].call_index")
                }
                location = PartLocation(call: c, index: task.partIndex)
                parts = state.calls[c].parts
            }
            guard parts.indices.contains(task.partIndex), let placeholder = parts[task.partIndex].placeholder else {
                throw APIError(.invalidCommand, "upload task must point at a file_placeholder part; \(location.path) is not one", path: "plan.upload_tasks[\(n)].part_index")
            }
            return Target(location: location, placeholder: placeholder, required: task.required)
        }
    }

    public func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState {
        let provider = context.provider
        var targets = try targets(of: state)
        if targets.isEmpty { return state }
        var state = state
        if let inline = provider.inlineFiles {
            (state, targets) = try await inlined(targets, in: state, inline: inline, provider: provider.providerName)
            if targets.isEmpty { return state }
        }
        guard let uploader = provider.uploads else {
            if let required = targets.first(where: \.required) {
                throw APIError(
                    .capabilityMissing,
                    "\(required.location.path) needs an upload of '\(required.placeholder.path)', but provider '\(provider.providerName)' cannot upload files; mark the upload task \"required\": false or choose a provider with uploads",
                    path: required.location.path, provider: provider.providerName)
            }
            for target in targets { context.log.record(.uploadSkipped(path: target.placeholder.path)) }
            return state
        }

        // One upload per distinct file, each opened once.
        var files: [String: FileUpload] = [:]
        var fileOfTarget: [String] = []
        for target in targets {
            let path: String
            switch resolver.resolve(target.placeholder.path) {
            case .success(let resolved): path = resolved
            case .failure(let refusal):
                throw APIError(.invalidCommand, refusal.message, path: target.location.path + ".path", provider: provider.providerName)
            }
            fileOfTarget.append(path)
            if files[path] != nil { continue }
            switch resolver.open(path) {
            case .success(let opened): files[path] = FileUpload(file: opened, mimeType: target.placeholder.effectiveMimeType)
            case .failure(.refused(let message)):
                throw APIError(.invalidCommand, message, path: target.location.path + ".path", provider: provider.providerName)
            case .failure(.unreadable(let message)):
                throw APIError(
                    .uploadFailed, "upload of '\(target.placeholder.path)' for \(target.location.path) failed: \(message)",
                    path: target.location.path, provider: provider.providerName)
            }
        }

        let registry = self.registry, retrier = self.retrier
        let outcomes = await withTaskGroup(of: (String, Result<FileRegistry.Lease, APIError>).self) { group in
            for file in files.values {
                group.addTask { (file.path, await registry.reference(for: file, using: uploader, retrier: retrier)) }
            }
            var collected: [String: Result<FileRegistry.Lease, APIError>] = [:]
            for await (path, outcome) in group { collected[path] = outcome }
            return collected
        }

        var references: [String: FileReference] = [:]
        for (path, outcome) in outcomes.sorted(by: { $0.key < $1.key }) {
            switch outcome {
            case .success(let lease):
                references[path] = lease.reference
                context.log.record(lease.reused ? .uploadReused(path: path, uri: lease.reference.uri) : .uploadPerformed(path: path, uri: lease.reference.uri))
            case .failure(var error):
                let target = zip(targets, fileOfTarget).first { $0.1 == path }!.0
                if error.kind != .cancelled {
                    error.kind = .uploadFailed
                    error.message = "upload of '\(target.placeholder.path)' for \(target.location.path) failed: \(error.message)"
                }
                error.path = target.location.path
                error.provider = error.provider ?? provider.providerName
                throw error
            }
        }

        var shared = state.sharedParts
        var calls = state.calls
        var callParts = calls.map(\.parts)
        for (target, path) in zip(targets, fileOfTarget) {
            let part = APIPart.fileRef(references[path]!)
            if let c = target.location.call { callParts[c][target.location.index] = part } else { shared[target.location.index] = part }
        }
        for c in calls.indices where callParts[c] != calls[c].parts { calls[c] = calls[c].with(parts: callParts[c]) }

        var ephemeral: [OpenedFile] = []
        for (target, path) in zip(targets, fileOfTarget) where target.placeholder.ephemeral {
            if let file = files[path]?.file, !ephemeral.contains(where: { $0 === file }) { ephemeral.append(file) }
        }
        return state.with(sharedParts: shared, calls: calls, ephemeralFiles: state.ephemeralFiles + ephemeral)
    }

    /// The targets whose type the provider takes only inline (`InlineFilesCapability`, e.g. images
    /// for OpenAI's Chat Completions): each file resolved and opened as for an upload, checked
    /// against the provider's cap before and after reading, read once however many parts name
    /// it, and put in the state as an `inline` part. Returns that state and the targets left.
    private func inlined(
        _ targets: [Target], in state: ExecutionState, inline: any InlineFilesCapability, provider: String
    ) async throws(APIError) -> (ExecutionState, [Target]) {
        var rest: [Target] = []
        var shared = state.sharedParts
        var callParts = state.calls.map(\.parts)
        var read: [String: InlineData] = [:]
        var ephemeral: [OpenedFile] = []
        for target in targets {
            let mimeType = target.placeholder.effectiveMimeType
            guard let limit = inline.inlineLimit(for: mimeType) else {
                rest.append(target)
                continue
            }
            let path: String
            switch resolver.resolve(target.placeholder.path) {
            case .success(let resolved): path = resolved
            case .failure(let refusal): throw APIError(.invalidCommand, refusal.message, path: target.location.path + ".path", provider: provider)
            }
            let data: InlineData
            if let done = read[path] {
                data = done
            } else {
                let file: OpenedFile
                switch resolver.open(path) {
                case .success(let opened): file = opened
                case .failure(.refused(let message)):
                    throw APIError(.invalidCommand, message, path: target.location.path + ".path", provider: provider)
                case .failure(.unreadable(let message)):
                    throw APIError(.uploadFailed, "reading '\(target.placeholder.path)' for \(target.location.path) failed: \(message)", path: target.location.path, provider: provider)
                }
                func tooLarge(_ size: Int) -> APIError {
                    APIError(
                        .invalidCommand,
                        "'\(target.placeholder.path)' (\(mimeType), \(size) bytes) at \(target.location.path) is sent inline to provider '\(provider)', which takes at most \(limit) bytes of \(mimeType) in a request: make the file smaller, or send it by URL as a file_ref part",
                        path: target.location.path, provider: provider)
                }
                guard file.size <= limit else { throw tooLarge(file.size) }
                let bytes: Data
                do {
                    bytes = try await file.contents()
                } catch is CancellationError {
                    throw APIError(.cancelled, "reading '\(target.placeholder.path)' for \(target.location.path) was cancelled", provider: provider)
                } catch {
                    throw APIError(.uploadFailed, "reading '\(target.placeholder.path)' for \(target.location.path) failed: \(error)", path: target.location.path, provider: provider)
                }
                // The file may have grown since it was opened: the cap holds for what was read.
                guard bytes.count <= limit else { throw tooLarge(bytes.count) }
                data = InlineData(mimeType: mimeType, data: bytes)
                read[path] = data
                if target.placeholder.ephemeral { ephemeral.append(file) }
            }
            if let c = target.location.call { callParts[c][target.location.index] = .inline(data) } else { shared[target.location.index] = .inline(data) }
        }
        if rest.count == targets.count { return (state, rest) }
        var calls = state.calls
        for c in calls.indices where callParts[c] != calls[c].parts { calls[c] = calls[c].with(parts: callParts[c]) }
        return (state.with(sharedParts: shared, calls: calls, ephemeralFiles: state.ephemeralFiles + ephemeral), rest)
    }
}
