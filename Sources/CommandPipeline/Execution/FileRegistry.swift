import Foundation

/// Remembers what each local file was uploaded as, so a file is uploaded once per
/// engine even when many parts, calls or concurrent commands name it. Files are told
/// apart by device and inode; one whose size or modification time changed is a new file.
package final class FileRegistry: Sendable {
    /// A reference and whether it came from an earlier or concurrent upload.
    package struct Lease: Sendable, Hashable {
        public var reference: FileReference
        public var reused: Bool
    }

    private let flights = SingleFlight<String, FileReference>()

    public init() {}

    /// The upload goes through `retrier`, inside the single flight, so commands waiting for the
    /// same file share one retried upload.
    public func reference(for file: FileUpload, using uploader: any UploadsCapability, retrier: Retrier = Retrier(policy: .none)) async -> Result<Lease, APIError> {
        // The opened file's identity: the same content under two names is one upload, and a
        // file changed in place (new size or time) is a new one.
        let key: String
        if let identity = file.file?.identity {
            key = "\(identity.device):\(identity.inode):\(identity.size):\(identity.modifiedNanoseconds)\u{0}\(file.mimeType)"
        } else {
            key = "\(file.path)\u{0}\(file.mimeType)"
        }
        do throws(APIError) {
            let (reference, shared) = try await flights.value(for: key, now: { .zero }) { () throws(APIError) in
                let outcome = await retrier.run(cancelled: APIError(.cancelled, "upload of '\(file.path)' was cancelled")) { _ -> Result<FileReference, APIError> in
                    do {
                        return .success(try await uploader.upload(file))
                    } catch {
                        return .failure(APIError(wrapping: error, kind: .uploadFailed, provider: nil, context: "upload"))
                    }
                }
                return (try outcome.result.get(), nil)
            }
            return .success(Lease(reference: reference, reused: shared))
        } catch {
            return .failure(error)
        }
    }
}
