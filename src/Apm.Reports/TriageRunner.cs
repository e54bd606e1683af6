using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Apm.Reports;

/// <summary>The outcome of one triage run: the two documents, or a failure kind and its reason.</summary>
/// <param name="Json">The JSON report; null on failure.</param>
/// <param name="Html">The HTML report; null on failure.</param>
/// <param name="Failure">"triage-failed", "triage-memory-limit" or "not-hprof"; null on success.</param>
/// <param name="Reason">Operator text; null on success.</param>
public sealed record TriageOutcome(byte[]? Json, byte[]? Html, string? Failure, string? Reason);

/// <summary>
/// Runs <c>apm triage</c> on a dump in a child process with a memory limit, so a hostile or huge dump cannot take the
/// host's memory: the collector (after a heap dump) and the server (an upload) both use it. The child's managed heap is
/// capped (DOTNET_GCHeapHardLimit: the runtime stops it with an OutOfMemoryException); where this process may create
/// a memory cgroup (cgroup v2 with the memory controller delegated, or the cgroup v1 memory hierarchy; usually as
/// root), the kernel also caps the whole child at the limit plus <see cref="NativeHeadroomBytes"/> and kills it beyond.
/// Elsewhere the GC limit is all there is, and the first run logs why.
/// </summary>
public static partial class TriageRunner
{
    /// <summary>What the hard cap allows beyond the managed-heap limit: the runtime's own native memory, code and stacks.</summary>
    public const long NativeHeadroomBytes = 256L << 20;

    // 128 + SIGKILL: how .NET reports a child the kernel (or anyone) killed with signal 9.
    private const int KilledExitCode = 137;
    private static int _fallbackLogged;

    /// <summary>
    /// Why a triage child gets no hard memory cap here (null when it does): tries to create and remove a memory cgroup.
    /// </summary>
    public static string? HardCapUnavailableReason()
    {
        using var probe = MemoryCgroup.TryCreate(NativeHeadroomBytes, out var whyNot);
        return probe is null ? whyNot : null;
    }

    /// <summary>Triage of <paramref name="dump"/>; never throws for a failed triage (see <see cref="TriageOutcome"/>).</summary>
    /// <param name="triageCommand">The program that runs <c>triage</c> ("dotnet /x/apm.dll"); null = this <c>apm</c>, or an apm.dll beside this program.</param>
    public static Task<TriageOutcome> RunAsync(string dump, long memoryLimitBytes, TimeSpan timeout, string? triageCommand, CancellationToken ct) =>
        RunAsync(dump, memoryLimitBytes, timeout, triageCommand, null, ct);

    /// <summary>Triage of <paramref name="dump"/>; never throws for a failed triage (see <see cref="TriageOutcome"/>).</summary>
    /// <param name="triageCommand">The program that runs <c>triage</c> ("dotnet /x/apm.dll"); null = this <c>apm</c>, or an apm.dll beside this program.</param>
    /// <param name="logger">Told (once per process) when the child gets no hard memory cap, and why.</param>
    public static async Task<TriageOutcome> RunAsync(string dump, long memoryLimitBytes, TimeSpan timeout, string? triageCommand, ILogger? logger, CancellationToken ct)
    {
        var work = Directory.CreateTempSubdirectory("apm-triage-");
        var hardCap = memoryLimitBytes + NativeHeadroomBytes;
        using var cgroup = MemoryCgroup.TryCreate(hardCap, out var noCgroup);
        try
        {
            var json = Path.Combine(work.FullName, "report.json");
            var html = Path.Combine(work.FullName, "report.html");
            var (exe, prefix) = Program(triageCommand);
            var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in prefix) psi.ArgumentList.Add(a);
            foreach (var a in new[] { "triage", dump, "--json", json, "--html", html }) psi.ArgumentList.Add(a);
            psi.Environment["DOTNET_GCHeapHardLimit"] = "0x" + memoryLimitBytes.ToString("x", CultureInfo.InvariantCulture);
            using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + exe);
            // Moved into the cgroup right after the start: what the runtime allocates in its first milliseconds stays
            // charged to ours, everything the triage allocates counts against the cap.
            var capped = cgroup is not null && cgroup.TryAdd(process.Id, out noCgroup);
            if (!capped && Interlocked.Exchange(ref _fallbackLogged, 1) == 0 && logger is not null)
                LogNoHardCap(logger, memoryLimitBytes, noCgroup);
            var stdout = process.StandardOutput.ReadToEndAsync(ct);
            var stderr = process.StandardError.ReadToEndAsync(ct);
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(timeout);
            try
            {
                await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                if (ct.IsCancellationRequested) throw;
                return new TriageOutcome(null, null, "triage-failed", $"Triage did not finish within {timeout}; it was stopped.");
            }

            var err = await stderr.ConfigureAwait(false);
            await stdout.ConfigureAwait(false);
            if (process.ExitCode != 0)
            {
                var tail = err.Length > 400 ? err[^400..] : err;
                var limits = capped
                    ? $"its managed-heap limit is {memoryLimitBytes} bytes, its hard cap (memory cgroup) {hardCap} bytes"
                    : $"its managed-heap limit is {memoryLimitBytes} bytes; no hard cap ({noCgroup})";
                if (capped && cgroup!.OomKilled)
                    return new TriageOutcome(null, null, "triage-memory-limit", $"Triage was killed by the kernel at its hard memory cap ({limits}).");
                if (process.ExitCode == KilledExitCode)
                    return new TriageOutcome(null, null, "triage-memory-limit", $"Triage was killed (SIGKILL, exit code 137), most likely by the kernel's out-of-memory killer ({limits}).");
                if (err.Contains("OutOfMemory", StringComparison.Ordinal) || err.Contains("out of memory", StringComparison.OrdinalIgnoreCase))
                    return new TriageOutcome(null, null, "triage-memory-limit", $"Triage exceeded its memory limit ({limits}).");
                // apm triage: 3 not HPROF, 4 truncated, 5 corrupt (docs/heap-triage.md).
                return process.ExitCode is 3 or 4 or 5
                    ? new TriageOutcome(null, null, "not-hprof", tail.Trim())
                    : new TriageOutcome(null, null, "triage-failed", $"Triage exited with code {process.ExitCode}: {tail.Trim()}");
            }

            return new TriageOutcome(await File.ReadAllBytesAsync(json, ct).ConfigureAwait(false), await File.ReadAllBytesAsync(html, ct).ConfigureAwait(false), null, null);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>The title of the finding that explains most: the CancelTimer pattern first, else the report's first finding.</summary>
    public static string TopFinding(byte[] json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.TryGetProperty("findings", out var f) && f.ValueKind == JsonValueKind.Array && f.GetArrayLength() > 0)
            {
                var findings = f.EnumerateArray().ToList();
                var top = findings.FirstOrDefault(x => Kind(x) == "timer-retained-finalizable");
                if (top.ValueKind != JsonValueKind.Object) top = findings[0];
                if (top.TryGetProperty("title", out var title)) return title.GetString() ?? "";
            }
        }
        catch (JsonException)
        {
            // The report is still stored; only its headline is missing.
        }

        return "No findings.";
    }

    private static string? Kind(JsonElement finding) =>
        finding.ValueKind == JsonValueKind.Object && finding.TryGetProperty("kind", out var k) ? k.GetString() : null;

    private static (string Exe, string[] Prefix) Program(string? triageCommand)
    {
        if (!string.IsNullOrWhiteSpace(triageCommand))
        {
            var parts = triageCommand.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return (parts[0], parts[1..]);
        }

        var entry = Assembly.GetEntryAssembly()?.Location;
        var host = Environment.ProcessPath ?? "dotnet";
        if (entry is not null && Path.GetFileNameWithoutExtension(entry) == "apm")
            return Path.GetFileNameWithoutExtension(host) == "dotnet" ? (host, [entry]) : (host, []);
        return ("dotnet", [Path.Combine(AppContext.BaseDirectory, "apm.dll")]);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Triage children get no hard memory cap, only the managed-heap limit of {LimitBytes} bytes (DOTNET_GCHeapHardLimit): {Reason}")]
    private static partial void LogNoHardCap(ILogger logger, long limitBytes, string reason);
}
