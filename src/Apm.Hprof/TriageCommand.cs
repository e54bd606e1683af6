using System.Globalization;
using Apm.Hprof.Analysis;
using Apm.Hprof.Reader;
using Apm.Hprof.Report;

namespace Apm.Hprof;

/// <summary>
/// <c>apm triage &lt;file.hprof&gt; [--html out.html] [--json out.json]</c>. Exit codes: 0 success, 2 usage,
/// 3 not an HPROF file, 4 truncated, 5 corrupt, 6 file cannot be read, 130 cancelled (see docs/heap-triage.md).
/// </summary>
public static class TriageCommand
{
    public const int Ok = 0;
    public const int Usage = 2;
    public const int NotHprof = 3;
    public const int Truncated = 4;
    public const int Corrupt = 5;
    public const int Unreadable = 6;
    public const int Cancelled = 130;

    /// <summary>Runs the command; <paramref name="args"/> excludes the word "triage".</summary>
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, bool interactiveTerminal, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        return Task.Run(() => Run(args, stdout, stderr, interactiveTerminal, ct), CancellationToken.None);
    }

    /// <summary>
    /// Runs the command on this process's console, as both <c>apm triage</c> and the native <c>apm-triage</c> do:
    /// progress bar on a terminal, Ctrl-C cancels cleanly (exit code 130) instead of killing the process.
    /// </summary>
    public static async Task<int> RunOnConsoleAsync(string[] args)
    {
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler cancel = (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };
        Console.CancelKeyPress += cancel;
        try
        {
            return await RunAsync(args, Console.Out, Console.Error, !Console.IsErrorRedirected, cts.Token).ConfigureAwait(false);
        }
        finally
        {
            Console.CancelKeyPress -= cancel;
        }
    }

    private static int Run(string[] args, TextWriter stdout, TextWriter stderr, bool interactive, CancellationToken ct)
    {
        string? file = null, html = null, json = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--html" when i + 1 < args.Length:
                    html = args[++i];
                    break;
                case "--json" when i + 1 < args.Length:
                    json = args[++i];
                    break;
                default:
                    if (args[i].StartsWith("--", StringComparison.Ordinal) || file != null)
                    {
                        stderr.WriteLine("usage: apm triage <file.hprof> [--html out.html] [--json out.json]");
                        return Usage;
                    }

                    file = args[i];
                    break;
            }
        }

        if (file == null)
        {
            stderr.WriteLine("usage: apm triage <file.hprof> [--html out.html] [--json out.json]");
            return Usage;
        }

        var lastStep = "";
        int lastPercent = -1;
        void Progress(string step, double fraction)
        {
            int percent = (int)Math.Clamp(fraction * 100, 0, 100);
            if (interactive)
            {
                if (step == lastStep && percent == lastPercent) return;
                int filled = percent / 5;
                stdout.Write(string.Create(CultureInfo.InvariantCulture, $"\r[{new string('#', filled)}{new string(' ', 20 - filled)}] {percent,3}% {step,-24}"));
                if (step == "done") stdout.WriteLine();
            }
            else if (step != lastStep)
            {
                stdout.WriteLine("triage: " + step);
            }

            lastStep = step;
            lastPercent = percent;
        }

        TriageResult result;
        try
        {
            result = HeapTriage.Run(file, Progress, ct);
        }
        catch (HprofFormatException e)
        {
            if (interactive) stdout.WriteLine();
            stderr.WriteLine("error: " + e.Message);
            return e.Kind switch { HprofErrorKind.NotHprof => NotHprof, HprofErrorKind.Truncated => Truncated, _ => Corrupt };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine("error: cannot read " + file + ": " + e.Message);
            return Unreadable;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine("cancelled");
            return Cancelled;
        }

        foreach (var f in result.Findings)
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{f.Kind}] {f.Title}"));
        if (result.Findings.Count == 0) stdout.WriteLine("no findings");
        try
        {
            // The page is built on another core while the JSON is written (each takes a millisecond or two).
            var page = html != null && json != null ? Task.Run(() => TriageReport.ToHtml(result), CancellationToken.None) : null;
            if (json != null)
            {
                using var js = File.Create(json);
                TriageReport.WriteJson(result, js);
                stdout.WriteLine("json: " + json);
            }

            if (html != null)
            {
                File.WriteAllText(html, page != null ? page.GetAwaiter().GetResult() : TriageReport.ToHtml(result));
                stdout.WriteLine("html: " + html);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine("error: cannot write the report: " + e.Message);
            return Unreadable;
        }

        return Ok;
    }
}
