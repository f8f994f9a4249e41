import Foundation

// First thing: a closed stdin, stdout or stderr gets /dev/null (and is remembered as closed),
// so no descriptor the CLI opens — such as the signal pipe — can take its number.
StandardStreams.secure()
// From here on SIGINT, SIGTERM and SIGHUP are caught whatever thread receives them.
Signals.install()

// Work runs off the main actor: every await from main-actor code would hop executors.
let status = await Task.detached { await Pipeline.main(Array(CommandLine.arguments.dropFirst())) }.value
exit(status)
