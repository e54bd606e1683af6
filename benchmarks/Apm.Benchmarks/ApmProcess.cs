using System.Diagnostics;
using System.Globalization;
using Apm.Testing;

namespace Apm.Benchmarks;

/// <summary>One <c>apm</c> process: its role, its port, its output, its /metrics.</summary>
internal sealed partial class ApmProcess : IDisposable
{
    private readonly System.Text.StringBuilder _output = new();

    private ApmProcess(string name, string role, Process process, Uri url)
    {
        Name = name;
        Role = role;
        Process = process;
        Http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Name { get; }

    public string Role { get; }

    public Process Process { get; }

    public HttpClient Http { get; }

    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>
    /// Starts <c>apm &lt;role&gt;</c> on a free loopback port; with <paramref name="cpuLimit"/>, inside that control group
    /// from its first instruction (a shell joins the group, then becomes the program).
    /// </summary>
    public static ApmProcess Start(string name, string role, DirectoryInfo work, Dictionary<string, string> common, Dictionary<string, string> own,
        CpuLimit? cpuLimit = null)
    {
        var port = FreePort.Next();
        var url = new Uri(Invariant($"http://127.0.0.1:{port}/"));
        var apm = Path.Combine(AppContext.BaseDirectory, "apm.dll");
        var psi = cpuLimit is null
            ? new ProcessStartInfo("dotnet", [apm, role])
            : new ProcessStartInfo("/bin/sh", ["-c", "echo $$ > \"$1\" && exec dotnet \"$2\" \"$3\"", "apm", cpuLimit.ProcsFile, apm, role]);
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        foreach (var (k, v) in common) psi.Environment[k] = v;
        foreach (var (k, v) in own) psi.Environment[k] = v;
        psi.Environment["ASPNETCORE_URLS"] = url.ToString().TrimEnd('/');
        psi.Environment["Apm__DataDirectory"] = work.CreateSubdirectory(name).FullName;
        psi.Environment["Logging__LogLevel__Default"] = "Warning";
        return new ApmProcess(name, role, Process.Start(psi) ?? throw new InvalidOperationException("could not start apm " + role), url);
    }

    public async Task WaitHealthyAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Process.HasExited) throw new InvalidOperationException($"apm {Role} exited with {Process.ExitCode}:\n{Output}");
            try
            {
                using var response = await Http.GetAsync(new Uri("healthz", UriKind.Relative)).ConfigureAwait(false);
                if (response.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            await Task.Delay(500).ConfigureAwait(false);
        }

        throw new TimeoutException($"apm {Role} was not healthy within {timeout}:\n{Output}");
    }

    /// <summary>The Prometheus text of /metrics as name → value (an empty map when the request failed).</summary>
    public async Task<Dictionary<string, long>> ReadMetricsAsync()
    {
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        try
        {
            var text = await Http.GetStringAsync(new Uri("metrics", UriKind.Relative)).ConfigureAwait(false);
            foreach (var line in text.Split('\n'))
            {
                if (line.Length == 0 || line[0] == '#') continue;
                var space = line.IndexOf(' ', StringComparison.Ordinal);
                if (space > 0 && long.TryParse(line.AsSpan(space + 1), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)) values[line[..space]] = v;
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            Console.Error.WriteLine($"{Name} /metrics failed: {ex.Message}");
        }

        return values;
    }

    /// <summary>SIGTERM, as a service manager stops it; waits for the exit, then kills what is left.</summary>
    public void Stop(TimeSpan grace)
    {
        if (!Process.HasExited && Kill(Process.Id, 15) != 0) return;
        if (!Process.WaitForExit(grace)) Console.Error.WriteLine($"{Name} did not stop within {grace.TotalSeconds:0} s of SIGTERM; killed");
        Dispose();
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    public void Dispose()
    {
        Http.Dispose();
        try
        {
            if (!Process.HasExited) Process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // exited meanwhile
        }

        Process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output)
        {
            // Keep the tail only: a soak runs for an hour.
            if (_output.Length > 64 * 1024) _output.Remove(0, _output.Length - 32 * 1024);
            _output.AppendLine(line);
        }
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
