import Foundation

/// One piece of a call's input. Placeholders name local files that the upload stage
/// turns into provider file references; everything else is sent as it is.
public enum APIPart: Sendable, Hashable {
    case text(String)
    case fileRef(FileReference)
    case filePlaceholder(FilePlaceholder)
    case inline(InlineData)
    /// Earlier turns of a conversation, in order, sent before the call's own parts.
    case history([HistoryTurn])
    /// What a tool returned, answering a tool call of an earlier assistant turn.
    case toolResult(ToolResult)

    /// The wire name of the part's type (`"text"`, `"file_ref"`, …).
    public var typeName: String {
        switch self {
        case .text: "text"
        case .fileRef: "file_ref"
        case .filePlaceholder: "file_placeholder"
        case .inline: "inline"
        case .history: "history"
        case .toolResult: "tool_result"
        }
    }

    public var placeholder: FilePlaceholder? {
        if case .filePlaceholder(let p) = self { p } else { nil }
    }

    /// Whether this is a placeholder (without copying it out, as `placeholder` does).
    public var isPlaceholder: Bool {
        if case .filePlaceholder = self { true } else { false }
    }
}

/// A file the provider already holds, e.g. `mock://files/…` or an uploaded file id.
public struct FileReference: Sendable, Hashable {
    public var uri: String
    public var mimeType: String
    public init(uri: String, mimeType: String) {
        self.uri = uri
        self.mimeType = mimeType
    }
}

/// A local file that should be uploaded before generation.
public struct FilePlaceholder: Sendable, Hashable {
    public var path: String
    /// Inferred from the extension when absent (see `MIMEType.infer(fromPath:)`).
    public var mimeType: String?
    /// An ephemeral file is deleted after its upload succeeded, never otherwise.
    public var ephemeral: Bool
    public init(path: String, mimeType: String? = nil, ephemeral: Bool = false) {
        self.path = path
        self.mimeType = mimeType
        self.ephemeral = ephemeral
    }

    /// The declared MIME type, else the one inferred from the path.
    public var effectiveMimeType: String { mimeType ?? MIMEType.infer(fromPath: path) }
}

/// Bytes sent with the request itself.
public struct InlineData: Sendable, Hashable {
    public var mimeType: String
    public var data: Data
    public init(mimeType: String, data: Data) {
        self.mimeType = mimeType
        self.data = data
    }
}

/// One earlier turn of a conversation (an `APIPart.history` part holds them in order, sent
/// before the call's own parts): the user's question (empty: none), then the assistant's
/// answer and the tools it called.
public struct HistoryTurn: Sendable, Hashable {
    public var question: String
    public var answer: String
    /// The assistant's tool calls after its answer's text; their results follow as
    /// `tool_result` parts.
    public var toolCalls: [ToolCall]
    public init(question: String, answer: String, toolCalls: [ToolCall] = []) {
        self.question = question
        self.answer = answer
        self.toolCalls = toolCalls
    }
}
