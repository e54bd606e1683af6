using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Influx;

/// <summary>
/// An <c>influxd</c> (InfluxDB 1.x, found on PATH) run as a child process with everything under one directory:
/// meta/, data/, wal/, influxd.conf and influxd.log. HTTP and RPC listen on 127.0.0.1 only, on free ports.
/// Used by the single-node mode and by tests. <see cref="StopAsync"/> and <see cref="StartAgainAsync"/> keep
/// the ports and the data, so a test can take the server away and bring it back.
/// </summary>
public sealed class LocalInfluxServer : IDisposable, IAsyncDisposable
{
    private const int SigTerm = 15;
    private readonly ILogger _logger;
    private readonly string _influxd;
    private readonly TimeSpan _startTimeout;
    private Process? _process;
    private Process? _watchdog;

    private LocalInfluxServer(string influxd, string directory, int httpPort, int rpcPort, TimeSpan startTimeout, ILogger logger)
    {
        _influxd = influxd;
        Directory = directory;
        HttpPort = httpPort;
        RpcPort = rpcPort;
        _startTimeout = startTimeout;
        _logger = logger;
        Url = new Uri($"http://127.0.0.1:{httpPort.ToString(CultureInfo.InvariantCulture)}");
    }

    /// <summary>The HTTP API, e.g. http://127.0.0.1:41234.</summary>
    public Uri Url { get; }

    /// <summary>Port of the HTTP API.</summary>
    public int HttpPort { get; }

    /// <summary>Port of the RPC service (backup/restore), bound to 127.0.0.1.</summary>
    public int RpcPort { get; }

    /// <summary>Directory holding data, config and log.</summary>
    public string Directory { get; }

    /// <summary>influxd's stdout and stderr, appended across restarts.</summary>
    public string LogPath => Path.Combine(Directory, "influxd.log");

    /// <summary>The generated configuration file.</summary>
    public string ConfigPath => Path.Combine(Directory, "influxd.conf");

    /// <summary>True while the child process runs.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The process whose exit stops influxd (this one, unless a test says otherwise).</summary>
    internal int OwnerPid { get; init; } = Environment.ProcessId;

    /// <summary>Process id of the running influxd, or null.</summary>
    public int? ProcessId => IsRunning ? _process!.Id : null;

    /// <summary>
    /// Starts influxd with its data under <paramref name="directory"/> (created if missing; existing data is kept)
    /// and returns once /ping answers 204. Ports are picked free unless given. Throws with the reason and the tail
    /// of the log when influxd is missing, exits, or does not answer within <paramref name="startTimeout"/> (60 s).
    /// <paramref name="influxdPath"/> overrides the PATH lookup.
    /// </summary>
    public static Task<LocalInfluxServer> StartAsync(string directory, int? httpPort = null, int? rpcPort = null,
        TimeSpan? startTimeout = null, ILogger? logger = null, string? influxdPath = null, CancellationToken cancellationToken = default)
        => StartOwnedAsync(directory, httpPort, rpcPort, startTimeout, logger, influxdPath, Environment.ProcessId, cancellationToken);

    /// <summary>As the public overload, with the process whose death must stop influxd (tests use a stand-in).</summary>
    internal static async Task<LocalInfluxServer> StartOwnedAsync(string directory, int? httpPort, int? rpcPort,
        TimeSpan? startTimeout, ILogger? logger, string? influxdPath, int ownerPid, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        string influxd;
        if (influxdPath is not null)
        {
            influxd = File.Exists(influxdPath) ? influxdPath : throw new InvalidOperationException(
                $"influxd was not found at '{influxdPath}'. Install InfluxDB 1.x or configure the URL of an existing InfluxDB instead.");
        }
        else
        {
            influxd = FindOnPath("influxd", Environment.GetEnvironmentVariable("PATH")) ?? throw new InvalidOperationException(
                "influxd was not found on PATH. Install InfluxDB 1.x (Debian: apt-get install influxdb), or configure the URL of an existing InfluxDB instead.");
        }

        var dir = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(dir);
        var log = logger ?? NullLogger.Instance;
        var timeout = startTimeout ?? TimeSpan.FromSeconds(60);

        // Free ports can be taken by another process between our probe and influxd's bind: try fresh ones again.
        var pickPorts = httpPort is null || rpcPort is null;
        for (var attempt = 1; ; attempt++)
        {
            var server = new LocalInfluxServer(influxd, dir, httpPort ?? FreePort(), rpcPort ?? FreePort(), timeout, log) { OwnerPid = ownerPid };
            try
            {
                await server.WriteConfigAsync(cancellationToken).ConfigureAwait(false);
                await server.LaunchAsync(cancellationToken).ConfigureAwait(false);
                return server;
            }
            catch (InfluxServerExitedException) when (pickPorts && attempt < 3)
            {
                log.LogWarning("influxd exited at start (port taken?); trying other ports, see {Log}", server.LogPath);
                server.Dispose();
            }
            catch
            {
                server.Dispose();
                throw;
            }
        }
    }

    /// <summary>Stops influxd: SIGTERM, then a kill after <paramref name="grace"/> (10 s). Data stays.</summary>
    public async Task StopAsync(TimeSpan? grace = null)
    {
        var p = _process;
        if (p is null)
        {
            StopWatchdog();
            return;
        }

        _process = null;
        try
        {
            if (!p.HasExited)
            {
                _ = Kill(p.Id, SigTerm);
                using var cts = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(10));
                try
                {
                    await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    _logger.LogWarning("influxd {Pid} ignored SIGTERM; killing it", p.Id);
                    p.Kill(entireProcessTree: true);
                    await p.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            p.Dispose();
            StopWatchdog();
        }
    }

    private void StopWatchdog()
    {
        if (_watchdog is not { } w) return;
        _watchdog = null;
        try
        {
            // It would notice that influxd is gone within a second; do not wait for that.
            if (!w.HasExited) w.Kill();
        }
        catch (InvalidOperationException)
        {
        }

        w.Dispose();
    }

    /// <summary>Starts influxd again on the same ports with the same data (after <see cref="StopAsync"/>).</summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        if (IsRunning) throw new InvalidOperationException("influxd is already running.");
        await LaunchAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops influxd (SIGTERM, then kill).</summary>
    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    /// <summary>Stops influxd (SIGTERM, then kill), blocking.</summary>
    public void Dispose() => StopAsync().GetAwaiter().GetResult();

    /// <summary>The last lines of the log, for error messages.</summary>
    public string LogTail(int maxChars = 4000)
    {
        try
        {
            if (!File.Exists(LogPath)) return "(no log)";
            using var fs = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var start = Math.Max(0, fs.Length - maxChars);
            fs.Seek(start, SeekOrigin.Begin);
            using var reader = new StreamReader(fs, Encoding.UTF8);
            return reader.ReadToEnd();
        }
        catch (IOException e)
        {
            return "(log unreadable: " + e.Message + ")";
        }
    }

    /// <summary>
    /// Rewrites the defaults printed by <c>influxd config</c> (from an empty file, so /etc is not merged in):
    /// paths into the directory, both listeners on 127.0.0.1, no usage reporting, no _internal monitoring
    /// database (it costs CPU every 10 s on small machines), no logo and no per-write log lines.
    /// </summary>
    internal static string RewriteConfig(string defaults, string directory, int httpPort, int rpcPort)
    {
        string Q(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
        var settings = new Dictionary<(string Section, string Key), string>
        {
            [("", "bind-address")] = Q("127.0.0.1:" + rpcPort.ToString(CultureInfo.InvariantCulture)),
            [("meta", "dir")] = Q(Path.Combine(directory, "meta")),
            [("data", "dir")] = Q(Path.Combine(directory, "data")),
            [("data", "wal-dir")] = Q(Path.Combine(directory, "wal")),
            [("data", "query-log-enabled")] = "false",
            [("monitor", "store-enabled")] = "false",
            [("http", "bind-address")] = Q("127.0.0.1:" + httpPort.ToString(CultureInfo.InvariantCulture)),
            [("http", "bind-socket")] = Q(Path.Combine(directory, "influxd.sock")),
            [("http", "unix-socket-enabled")] = "false",
            [("http", "auth-enabled")] = "false",
            [("http", "suppress-write-log")] = "true",
            [("logging", "suppress-logo")] = "true",
        };

        // Upstream 1.x spells it reporting-disabled; Debian's build renamed it reporting-enabled. Set whichever exists.
        if (defaults.Contains("reporting-enabled", StringComparison.Ordinal))
            settings[("", "reporting-enabled")] = "false";
        else
            settings[("", "reporting-disabled")] = "true";

        var done = new HashSet<(string, string)>();
        var output = new List<string>();
        var section = "";
        var sectionIsArray = false;

        void AddMissing()
        {
            foreach (var ((s, k), v) in settings)
            {
                if (s == section && !sectionIsArray && done.Add((s, k))) output.Add((s.Length == 0 ? "" : "  ") + $"{k} = {v}");
            }
        }

        foreach (var raw in defaults.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            var trimmed = line.Trim();
            if (trimmed.StartsWith('['))
            {
                AddMissing();
                sectionIsArray = trimmed.StartsWith("[[", StringComparison.Ordinal);
                section = trimmed.Trim('[', ']').Trim();
                output.Add(line);
                continue;
            }

            var eq = trimmed.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && !trimmed.StartsWith('#') && !sectionIsArray)
            {
                var key = trimmed[..eq].Trim();
                if (settings.TryGetValue((section, key), out var value))
                {
                    done.Add((section, key));
                    output.Add(line[..(line.Length - line.TrimStart().Length)] + key + " = " + value);
                    continue;
                }
            }

            output.Add(line);
        }

        // Keys missing from the last section (or from the top level, when there are no sections).
        AddMissing();
        return string.Join('\n', output) + "\n";
    }

    private async Task WriteConfigAsync(CancellationToken ct)
    {
        var empty = Path.Combine(Directory, "empty.conf");
        await File.WriteAllTextAsync(empty, "", ct).ConfigureAwait(false);
        var psi = new ProcessStartInfo(_influxd) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("config");
        psi.ArgumentList.Add("-config");
        psi.ArgumentList.Add(empty);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not run 'influxd config'");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        using (var cts = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            cts.CancelAfter(TimeSpan.FromSeconds(30));
            await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }

        var defaults = await stdout.ConfigureAwait(false);
        if (p.ExitCode != 0 || !defaults.Contains("[http]", StringComparison.Ordinal))
            throw new InvalidOperationException($"'influxd config' failed (exit {p.ExitCode}): {await stderr.ConfigureAwait(false)}");
        var config = RewriteConfig(defaults, Directory, HttpPort, RpcPort);
        await File.WriteAllTextAsync(ConfigPath, config, ct).ConfigureAwait(false);
    }

    private async Task LaunchAsync(CancellationToken ct)
    {
        // sh execs influxd with its output appended to the log file, so the log keeps growing even when
        // nobody in this process reads it, and the child pid is influxd's own.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$0\" -config \"$1\" >>\"$2\" 2>&1 </dev/null");
        psi.ArgumentList.Add(_influxd);
        psi.ArgumentList.Add(ConfigPath);
        psi.ArgumentList.Add(LogPath);
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start influxd");
        _process = process;
        _logger.LogInformation("Started influxd {Pid} on {Url} with data in {Directory}", process.Id, Url, Directory);
        StartWatchdog(process.Id);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var ping = new Uri(Url, "/ping");
        var sw = Stopwatch.StartNew();
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                _process = null;
                var code = process.ExitCode;
                process.Dispose();
                throw new InfluxServerExitedException($"influxd exited with code {code} before answering /ping on {Url}. Log {LogPath}:\n{LogTail()}");
            }

            try
            {
                using var response = await http.GetAsync(ping, ct).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.NoContent) return;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
            }

            if (sw.Elapsed > _startTimeout)
            {
                await StopAsync().ConfigureAwait(false);
                throw new TimeoutException($"influxd did not answer /ping on {Url} within {_startTimeout.TotalSeconds:0} s. Log {LogPath}:\n{LogTail()}");
            }

            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A tiny shell loop that sends SIGTERM to influxd when the owning process dies (a crashed `apm up` or a killed
    /// test host must not leave an influxd holding its port and data). It ends by itself once influxd is gone.
    /// </summary>
    private void StartWatchdog(int influxdPid)
    {
        try
        {
            var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("while kill -0 \"$0\" 2>/dev/null && kill -0 \"$1\" 2>/dev/null; do sleep 1; done; kill -TERM \"$1\" 2>/dev/null; exit 0");
            psi.ArgumentList.Add(OwnerPid.ToString(CultureInfo.InvariantCulture));
            psi.ArgumentList.Add(influxdPid.ToString(CultureInfo.InvariantCulture));
            _watchdog?.Dispose();
            _watchdog = Process.Start(psi);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            _logger.LogWarning("No watchdog for influxd {Pid} ({Reason}); it will outlive a crash of this process", influxdPid, e.Message);
        }
    }

    internal static string? FindOnPath(string name, string? path)
    {
        foreach (var dir in (path ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }

        return null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Kill(int pid, int signal);
}

/// <summary>influxd exited while starting.</summary>
internal sealed class InfluxServerExitedException(string message) : InvalidOperationException(message);
