import Foundation

// First thing: from here on SIGINT and SIGTERM are caught whatever thread receives them.
Signals.install()

// Work runs off the main actor: every await from main-actor code would hop executors.
let status = await Task.detached { await Pipeline.main(Array(CommandLine.arguments.dropFirst())) }.value
exit(status)
