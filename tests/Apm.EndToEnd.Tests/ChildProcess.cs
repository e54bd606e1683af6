using System.Diagnostics;

namespace Apm.EndToEnd.Tests;

/// <summary>A child process whose stdout and stderr are collected; killed (with its children) on dispose.</summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly System.Text.StringBuilder _output = new();
    private readonly System.Text.StringBuilder _errors = new();

    public ChildProcess(Process process)
    {
        Process = process;
        process.OutputDataReceived += (_, e) => { lock (_output) _output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (_output)
            {
                _output.AppendLine(e.Data);
                _errors.AppendLine(e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public Process Process { get; }

    /// <summary>
    /// `apm aggregator` serving the API on <paramref name="apiPort"/>, on the pipeline's Kafka (whose topics the test made)
    /// and InfluxDB, with the leak rules at test speed (an evaluation every 2 s, firing after 2 breached ones, a 20 s
    /// FinalizerBacklog window: the defaults would make a test as long as a real incident); <paramref name="settings"/>
    /// add to that or override it.
    /// </summary>
    public static ChildProcess StartAggregator(Pipeline pipeline, int apiPort, IReadOnlyDictionary<string, string> settings)
    {
        var env = new Dictionary<string, string>
        {
            ["Apm__Kafka__BootstrapServers"] = pipeline.KafkaOptions.BootstrapServers,
            ["Apm__Kafka__EnsureTopics"] = "false",
            ["Apm__Influx__Url"] = pipeline.InfluxOptions.Url!.ToString(),
            ["Apm__Aggregator__BatchMaxDelay"] = "00:00:00.300",
            ["Apm__Alerts__EvaluationInterval"] = "00:00:02",
            ["Apm__Alerts__Lifecycle__ConsecutiveEvaluations"] = "2",
            ["Apm__Rules__FinalizerBacklog__Window"] = "00:00:20",
        };
        foreach (var (key, value) in settings) env[key] = value;
        return StartApm(["aggregator", "--urls", $"http://127.0.0.1:{apiPort}"], env);
    }

    /// <summary>
    /// Starts the <c>apm</c> executable built beside the tests (<c>dotnet apm.dll</c>) with <paramref name="args"/> and extra
    /// environment, under <paramref name="runAs"/> when given (a command prefix such as setpriv's).
    /// </summary>
    public static ChildProcess StartApm(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null, IReadOnlyList<string>? runAs = null)
    {
        string[] command = [.. runAs ?? [], "dotnet", Path.Combine(AppContext.BaseDirectory, "apm.dll"), .. args];
        var psi = new ProcessStartInfo(command[0], command[1..])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) psi.Environment[name] = value;
        return new ChildProcess(Process.Start(psi)!);
    }

    /// <summary>Runs <c>apm</c> to its end (killed after <paramref name="timeout"/>); returns its exit code and everything it printed.</summary>
    public static async Task<(int ExitCode, string Output)> RunApmAsync(TimeSpan timeout, params string[] args)
    {
        var (code, output, _) = await RunApmAsAsync(null, null, timeout, args);
        return (code, output);
    }

    /// <summary>
    /// Runs <c>apm</c> to its end under <paramref name="runAs"/> (killed after <paramref name="timeout"/>); returns its
    /// exit code, everything it printed and what it printed on stderr alone.
    /// </summary>
    public static async Task<(int ExitCode, string Output, string Errors)> RunApmAsAsync(IReadOnlyList<string>? runAs,
        IReadOnlyDictionary<string, string>? environment, TimeSpan timeout, params string[] args)
    {
        using var child = StartApm(args, environment, runAs);
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await child.Process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"apm {string.Join(' ', args)} did not end within {timeout}:\n{child.Output}");
        }

        child.Process.WaitForExit(); // drains the output events
        return (child.Process.ExitCode, child.Output, child.Errors);
    }

    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>What the process printed on stderr.</summary>
    public string Errors { get { lock (_output) return _errors.ToString(); } }

    public void Dispose()
    {
        if (!Process.HasExited) Process.Kill(true);
        Process.Dispose();
    }
}
