import CommandPipeline
import Foundation

// First thing: a closed stdin, stdout or stderr gets /dev/null (and is remembered as closed),
// so no descriptor the CLI opens — such as the signal pipe — can take its number.
StandardStreams.secure()
// A shell's default open-file limit (often 1024) is lower than many runs need: take what the
// hard limit allows. Connection pools are then sized from it (DescriptorLimit).
DescriptorLimit.raiseSoftLimitToHard()
// From here on SIGINT, SIGTERM and SIGHUP are caught whatever thread receives them.
Signals.install()

// Work runs off the main actor: every await from main-actor code would hop executors.
let status = await Task.detached { await Pipeline.main(Array(CommandLine.arguments.dropFirst())) }.value
exit(status)
