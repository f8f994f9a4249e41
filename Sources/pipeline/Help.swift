enum Help {
    static let version = "pipeline 0.1.0 (CommandPipeline)"

    static let usage = "pipeline [run|validate|capabilities] [options] < commands.jsonl > results.jsonl"

    static let text = """
    pipeline — run planned LLM API commands: JSON commands on stdin, one JSON result per line on stdout.

    USAGE:
      pipeline [run] [options] < commands.json > results.jsonl
      pipeline validate [options] < commands.json      parse, validate, check against the model catalog; execute nothing
      pipeline capabilities [--provider NAME]          print the provider's probed capabilities as JSON
      pipeline batch submit|status|collect|retry|cancel … run commands through the provider's batch service (pipeline batch --help)
      pipeline report RESULTS.jsonl… [--title TEXT] [--stats-json FILE] > report.html
                                                       one self-contained HTML page (inline CSS and SVG, nothing fetched) of
                                                       results of run or batch collect: totals, per model (failures by kind,
                                                       retries, latency p50/p95/p99, tokens, cost), latency histograms,
                                                       failures with their first messages, cache effect; --stats-json FILE
                                                       also writes the per-model rows as --stats-json does; --title at most
                                                       200 characters. Lines that are not results are named on stderr and in
                                                       the page, and make the exit status 1
      pipeline cache stats PATH                        a response cache file (--response-cache) as JSON: entries, bytes,
                                                       file_bytes, hits, oldest, newest
      pipeline cache prune PATH [--older-than SECONDS] [--max-mb N]
                                                       remove answers stored more than SECONDS ago, then the oldest until
                                                       they take at most N MiB; prints what went and what remains
      pipeline --help | --version

    EXAMPLE:
      echo '{"model":"mock","prompt":"Hello"}' | pipeline
      pipeline --concurrency 128 --unordered < commands.jsonl > results.jsonl

    OPTIONS (run):
      --provider NAME           mock (built in, offline), openai (any OpenAI-compatible server), gemini or anthropic (native APIs)
                                                                               default: mock
      --base-url URL            provider endpoint, e.g. http://127.0.0.1:8000/v1; for gemini and anthropic the origin
                                (the adapter appends /v1beta/… or /v1/…), e.g. http://127.0.0.1:8000/anthropic
                                                                               default: https://api.openai.com/v1 (openai),
                                                                               https://generativelanguage.googleapis.com (gemini),
                                                                               https://api.anthropic.com (anthropic)
      --api-key-env VAR         environment variable holding the API key (never a flag; optional on loopback)
                                                                               default: OPENAI_API_KEY (openai), GEMINI_API_KEY then
                                                                               GOOGLE_API_KEY (gemini), ANTHROPIC_API_KEY (anthropic)
      --allow-insecure-http     send the key over plain http:// to a host off this machine
                                                                               default: off (loopback is always allowed)
      --ca-file FILE            also trust the CA certificates in FILE (PEM) for https: a private gateway or a test
                                server; certificates are always verified (system trust store, host name, TLS 1.2+)
                                                                               default: the system's trust store alone
      --capabilities LIST       what the server has: generation,uploads,streaming,batch (openai);
                                generation,uploads,caching,streaming,token_counting,batch (anthropic, gemini)
                                                                               default: uploads,streaming on api.openai.com, streaming elsewhere;
                                                                               all of them for anthropic and gemini
      --concurrency N           commands working at once, 1–10000 (one waiting out a retry's backoff
                                or another command's upload or cache lends its slot; rate-limit
                                waits keep theirs)                             default: \(RunOptions.defaultConcurrency)
      --unordered               write results as they complete                 default: input order
      --reorder-buffer-mb N     ordered output: finished results that may wait for an earlier
                                command, 1–65536 MiB                              default: \(RunOptions.defaultReorderBufferMB)
      --events                  write each command's events as JSON Lines (text deltas,
                                attempts, waits, …) ending in its result    default: off
                                (deltas are written as they come, not kept: an answer is held once, plus
                                its result line while it is written, plus its record queued for --sink)
      --quiet                   no progress line and no summary on stderr      default: off
      --expect N                commands the input holds, for the progress line's total and ETA when stdin
                                is not a regular file (a file's total is estimated from its size), 1–10^12
      --progress-interval SECONDS
                                stderr not a terminal: a plain progress line this often, 0 (off)–86400;
                                on a terminal one line redrawn in place: done/total, %, bar, commands/s,
                                ETA, tokens/s, cost (budget left), failures by kind, waiting on retry,
                                in flight; fewer fields when narrow (TIOCGWINSZ, COLUMNS)   default: 30
      --resume FILE             skip commands that already succeeded in FILE (an earlier results file): same id
                                and same input bytes (`input_hash`); never one that did not succeed
      --files-root DIR          file paths resolve inside DIR and may not leave it   default: working directory
      --timeout SECONDS         deadline for each command, retries included, 0.001–604800 (one week)
                                                                               default: none
      --rate-limit-rpm N        requests per minute for the whole run, 1–10000000        default: none
      --rate-limit-tpm N        tokens per minute for the whole run, 1–10000000000       default: none
      --call-timeout SECONDS    deadline for each attempt of a call (retried), 0.001–604800
                                                                               default: none
      --max-attempts N          attempts per call, the first included, 1–100  default: 3
      --max-repairs N           re-asks of an answer that breaks its JSON response_format, 0–10
                                (a call's config.max_repairs wins)             default: 1
                                (retryable errors only; backoff 0.5 s doubling to 30 s, Retry-After honoured)
      --mock-latency-ms N       mock: latency of each generate call, 0–3600000   default: 0
      --mock-fail-model NAME    mock: calls on NAME fail (retryable, unavailable); repeatable
      --mock-capabilities LIST  mock: comma list from generation,uploads,caching,streaming,token_counting,batch
                                                                               default: all
      --mock-faults SPEC        mock: seeded faults, a comma list of key=value from
                                retryable=FRACTION, retry_after_ms=N, fatal=FRACTION, hang=FRACTION,
                                jitter_ms=N, seed=N (N ms: 0–3600000)   e.g. retryable=0.2,fatal=0.02,hang=0.01,seed=7
                                (hanging calls end only by --call-timeout or --timeout);
                                upload_failures=N, cache_failures=N: the first N uploads of each file /
                                creations of each cache fail (retryable, with retry_after_ms when given)
      --sink KIND:TARGET[@N]    also hand every result line (with --events: each command's result) to a sink,
                                off the output path; repeatable:
                                  jsonl:PATH     append to a file, fsync at the end
                                  sqlite:PATH    upsert into table results, keyed by (run_id, command_id)
                                  webhook:URL    POST batches of 50 with an Idempotency-Key, retried, no redirects
                                  postgres:URL   upsert into PostgreSQL in batches, e.g.
                                                 'postgres:postgresql://app@127.0.0.1:5432/runs?table=results'
                                                 (table, sslmode, password_env=VAR, connect_timeout; the password
                                                 only from PGPASSWORD or VAR, never in the URL; holds up to
                                                 256 MiB of results while the database is away, then drops and counts)
                                @N: priority, lower runs first, -1000000–1000000   e.g. --sink sqlite:out.db@10
                                queue: at most 100000 results and 64 MiB of them wait for the sinks; beyond
                                that a result is skipped for the sinks and reported (the run goes on)
                                                                               default: none; priority 100
      --sinks FILE              sinks from a JSON file: {"sinks": [{"kind", "target", "priority", "batch_size",
                                "timeout_seconds", "options"}]}, ${VAR} expanded from the environment
                                (Design/extending.md has the format); adds to --sink
      --sink-timeout SECONDS    longest one sink call may take; a hung sink is abandoned and skipped,
                                the end of the run waits at most twice this, 0.001–604800   default: 30
      --run-id ID               the run id sinks see (1–128 of A–Z a–z 0–9 . _ : -); reuse it when resuming
                                                                               default: a fresh one
      --models FILE             model catalog over the built-in one (limits, modalities, prices; JSON, see
                                Design/extending.md); commands are checked before any call and priced after
      --deployments FILE        logical models spread over deployments (providers, endpoints, keys; weights,
                                rpm/tpm, circuit breakers; JSON, see Design/routing.md); other models go
                                to --provider
      --max-cost USD            stop taking commands once spent plus in-flight estimates would pass USD;
                                commands not started fail with budget_exceeded, 0–1000000   default: none
      --stats                   per provider and model at the end, on stderr: calls, failures by kind, retries,
                                tokens (input, cached, output), latency p50/p95/p99
      --stats-json FILE         the same as one JSON object in FILE (replaced atomically; a failed write is exit 3)
      --hook-exec PROGRAM       run PROGRAM once as a hook: before each command it gets the command as a JSON line
                                and answers {} or {"command":…} (enrich) or {"reject":"why"}; after it, the outcome,
                                answered {} or {"error":"why"}; every answer echoes the question's "index" and "hook";
                                repeatable, in order (Design/extending.md)
      --hook-timeout SECONDS    the longest a --hook-exec program may take over one question (and never more than
                                the command's --timeout leaves); one that misses it is dead: later commands are
                                rejected at once   default: 30

      --response-cache PATH     keep each successful answer in the SQLite file PATH and answer an identical call
                                (provider, endpoint, model, parts with files by content, config) from it: no
                                request, cost 0, telemetry.calls[i].response_cache "hit"; several runs may share
                                the file at once; one that is not a cache is a usage error   default: none
      --response-cache-ttl SECONDS
                                an answer older than this is not used, 1–3155760000        default: forever
      --response-cache-max-mb N the answers kept take at most N MiB, oldest out first, 1–1048576   default: 1024

    INPUT: JSON Lines, pretty-printed or concatenated objects, or a top-level array of commands (UTF-8;
      a leading byte order mark is skipped). A broken value yields one failed record and reading resumes
      on the next line; one value may be at most 64 MiB; duplicate keys in an object are an error.
      Full commands have "plan"; the shorthand is {"model","prompt"|"prompts","system","files","fallback_model"}.
    OUTPUT: one JSON object per input command, status "succeeded" or "failed"; progress and summary on stderr
      (with the run's cost at catalog prices; models not in the catalog run unchecked and uncosted, said once).
    EXIT STATUS: 0 all succeeded · 1 some failed · 2 usage error (also: stdin closed or unreadable)
      · 3 results could not be written (disk full, closed pipe or stdout) · 130 interrupted (SIGINT, SIGTERM, SIGHUP).
    """
}
