using Apm.Hprof;

// `apm-triage <file.hprof> [--html out.html] [--json out.json]`, or with the word "triage" first, as `apm` takes it
// (so that a setting naming the command to run, like the collector's TriageCommand, can point here instead).
return await TriageCommand.RunOnConsoleAsync(args.Length > 0 && args[0] == "triage" ? args[1..] : args).ConfigureAwait(false);
