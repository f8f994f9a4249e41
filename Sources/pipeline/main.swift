import Foundation

// Work runs off the main actor: every await from main-actor code would hop executors.
let status = await Task.detached { await Pipeline.main(Array(CommandLine.arguments.dropFirst())) }.value
exit(status)
