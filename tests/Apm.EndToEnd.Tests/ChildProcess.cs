using System.Diagnostics;

namespace Apm.EndToEnd.Tests;

/// <summary>A child process whose stdout and stderr are collected; killed (with its children) on dispose.</summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly System.Text.StringBuilder _output = new();

    public ChildProcess(Process process)
    {
        Process = process;
        process.OutputDataReceived += (_, e) => { lock (_output) _output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (_output) _output.AppendLine(e.Data); };
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
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "apm.dll"), "aggregator", "--urls", $"http://127.0.0.1:{apiPort}"])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var env = psi.Environment;
        env["Apm__Kafka__BootstrapServers"] = pipeline.KafkaOptions.BootstrapServers;
        env["Apm__Kafka__EnsureTopics"] = "false";
        env["Apm__Influx__Url"] = pipeline.InfluxOptions.Url!.ToString();
        env["Apm__Aggregator__BatchMaxDelay"] = "00:00:00.300";
        env["Apm__Alerts__EvaluationInterval"] = "00:00:02";
        env["Apm__Alerts__Lifecycle__ConsecutiveEvaluations"] = "2";
        env["Apm__Rules__FinalizerBacklog__Window"] = "00:00:20";
        foreach (var (key, value) in settings) env[key] = value;
        return new ChildProcess(Process.Start(psi)!);
    }

    public string Output { get { lock (_output) return _output.ToString(); } }

    public void Dispose()
    {
        if (!Process.HasExited) Process.Kill(true);
        Process.Dispose();
    }
}
