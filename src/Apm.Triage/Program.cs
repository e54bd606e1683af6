using Apm.Hprof;

// `apm-triage <file.hprof> [--html out.html] [--json out.json]`, or with the word "triage" first, as `apm` takes it
// (so that a setting naming the command to run, like the collector's TriageCommand, can point here instead).
var rest = args.Length > 0 && args[0] == "triage" ? args[1..] : args;
using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // Cancel the triage cleanly (exit code 130) instead of killing the process.
    e.Cancel = true;
    cts.Cancel();
};
return await TriageCommand.RunAsync(rest, Console.Out, Console.Error, !Console.IsErrorRedirected, cts.Token).ConfigureAwait(false);
