using Apm.Hprof;
using Apm.Jvm.Attach;

namespace Apm.Cli;

/// <summary>
/// The `apm` command. Every role runs from this one executable:
/// up (single node: embedded Kafka, local InfluxDB, aggregator, API, collector), collector, aggregator, server,
/// triage (heap-dump analysis of a file), dump, attach (a jcmd without a JDK) and test-mail.
/// </summary>
internal static class Program
{
    private const string Usage = """
        usage: apm <command> [options]

          up [--demo]      single node: embedded Kafka broker, local InfluxDB (unless Apm__Influx__Url is set),
                           aggregator, JSON API on http://127.0.0.1:5080, and a collector for this host
          collector        only the host collector (needs Apm__Kafka__BootstrapServers)
          aggregator       only an aggregator (needs Apm__Kafka__BootstrapServers and Apm__Influx__Url)
          server           only the HTTP API (needs Apm__Influx__Url)
          triage <file.hprof> [--html out.html] [--json out.json]
                           analyse a heap dump and write the report
          dump <jvm-id> [--all] [--no-wait] [--timeout 15m] [--url http://127.0.0.1:5080] [--api-key KEY]
                           ask the JVM's collector (through a running Apm) for a heap dump and its triage, and
                           follow it: prints each state and the reason; exit 0 done, 1 refused or failed, 3 timeout
          attach [--timeout S] <pid> <command...>
                           run a diagnostic command in a local JVM through the attach protocol, like jcmd but
                           without a JDK (e.g. GC.finalizer_info, GC.class_histogram, help); prints the JVM's
                           output; exit 0, 1 the JVM refused the command, 3 timeout, 4 no such process, 5 not a
                           JVM, 6 attach disabled, 7 SIGQUIT ignored, 8 permission denied, 9 the JVM exited,
                           10 protocol error (see docs/operations.md)
          test-mail        send one test message with the alert e-mail settings (Apm__Smtp__*, Apm__Alerts__To)

        Options are settings in the .NET convention: environment variables Apm__Section__Key, or
        --Apm:Section:Key=value on the command line; --urls sets the listening address. See docs/configuration.md.
        """;

    /// <summary>A token that Ctrl-C cancels (instead of killing the process), so a command can stop cleanly.</summary>
    private static CancellationTokenSource CancelOnCtrlC()
    {
        var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };
        return cts;
    }

    private static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            await Console.Out.WriteLineAsync(Usage).ConfigureAwait(false);
            return args.Length == 0 ? 2 : 0;
        }

        var rest = args[1..];
        switch (args[0])
        {
            case "triage":
                return await TriageCommand.RunOnConsoleAsync(rest).ConfigureAwait(false);

            case "test-mail":
                return await TestMailCommand.RunAsync(rest, Console.Out, Console.Error).ConfigureAwait(false);
            case "dump":
                using (var cts = CancelOnCtrlC())
                {
                    return await DumpCommand.RunAsync(rest, Console.Out, Console.Error, cts.Token).ConfigureAwait(false);
                }

            case "attach":
                using (var cts = CancelOnCtrlC())
                {
                    return await AttachCommand.RunAsync(rest, Console.Out, Console.Error, cts.Token).ConfigureAwait(false);
                }

            case "up":
                return await ApmHost.RunAsync(ApmRoles.All, rest).ConfigureAwait(false);
            case "collector":
                return await ApmHost.RunAsync(ApmRoles.Collector, rest).ConfigureAwait(false);
            case "aggregator":
                return await ApmHost.RunAsync(ApmRoles.Aggregator, rest).ConfigureAwait(false);
            case "server":
                return await ApmHost.RunAsync(ApmRoles.Api, rest).ConfigureAwait(false);
            default:
                await Console.Error.WriteLineAsync($"apm: unknown command '{args[0]}'\n\n{Usage}").ConfigureAwait(false);
                return 2;
        }
    }
}
