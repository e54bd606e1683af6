using System.Collections.Concurrent;
using Apm.Jvm.Attach;
using Apm.Protocol.V1;
using Apm.Reports;
using Microsoft.Extensions.Logging;

namespace Apm.Collector.Commands;

/// <summary>Heap-dump capture and edge triage at the collector, bound from <c>Apm:Collector:HeapDump</c>.</summary>
public sealed class HeapDumpOptions
{
    /// <summary>Act on commands at all.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Where dumps are written (created world-writable with the sticky bit, like /tmp, so JVMs of other users can write there); default <c>$TMPDIR/apm-dumps</c>.</summary>
    public string? Directory { get; set; }

    /// <summary>A dump is refused, or stopped, when the directory's file system has less free space than this.</summary>
    public long MinFreeBytes { get; set; } = 1L << 30;

    /// <summary>A dump growing beyond this is abandoned and deleted.</summary>
    public long MaxBytes { get; set; } = 16L << 30;

    /// <summary>Fewest time between two dumps of one JVM.</summary>
    public TimeSpan MinInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Time allowed for the JVM to write the dump.</summary>
    public TimeSpan DumpTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Dump every object (no full GC first) unless the command asks; live objects only by default.</summary>
    public bool KeepDumps { get; set; }

    /// <summary>Managed-heap limit of the triage child process (DOTNET_GCHeapHardLimit); the dump itself is memory-mapped on top.</summary>
    public long TriageMemoryLimitBytes { get; set; } = 2L << 30;

    /// <summary>Time allowed for the triage child.</summary>
    public TimeSpan TriageTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>The program that runs <c>triage</c>: empty = this <c>apm</c> (or an <c>apm.dll</c> beside this program).</summary>
    public string? TriageCommand { get; set; }

    /// <summary>The dump directory actually used.</summary>
    public string EffectiveDirectory => string.IsNullOrWhiteSpace(Directory) ? Path.Combine(Path.GetTempPath(), "apm-dumps") : Directory;
}

/// <summary>
/// Carries out one heap-dump command: guards (expiry, JVM known, one dump per host, minimum interval per JVM, free
/// disk before and during, size limit), <c>GC.heap_dump</c> through the attach client, triage in a child process with a
/// memory limit, the report published in chunks, the dump deleted. Every refusal and failure is reported as a
/// <see cref="CommandResult"/> with its reason; nothing here blocks sampling (it runs on its own task).
/// </summary>
public sealed partial class HeapDumpHandler
{
    private readonly HeapDumpOptions _options;
    private readonly ILogger _logger;
    private readonly Action<CollectorMessage> _publish;
    private readonly Action<TriageReportChunk> _publishReport;
    private readonly AttachSampler.JcmdRunner _jcmd;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastDump = new(StringComparer.Ordinal);

    /// <param name="publish">Sends a command result (on the samples topic).</param>
    /// <param name="publishReport">Sends one report chunk (on the reports topic).</param>
    public HeapDumpHandler(HeapDumpOptions options, ILogger logger, Action<CollectorMessage> publish, Action<TriageReportChunk> publishReport,
        AttachSampler.JcmdRunner? jcmd = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _logger = logger;
        _publish = publish;
        _publishReport = publishReport;
        _jcmd = jcmd ?? new HotSpotAttachClient().JcmdAsync;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Dumps taken, refused or failed, by outcome (for /healthz).</summary>
    public ConcurrentDictionary<string, long> Outcomes { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Handles <paramref name="command"/> for <paramref name="jvm"/> (null when the collector does not watch that JVM).
    /// Returns the final result it published.
    /// </summary>
    public async Task<CommandResult> HandleAsync(CollectorCommand command, JvmIdentity? jvm, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(command);
        var target = jvm ?? new JvmIdentity { JvmId = command.JvmId, Host = command.TargetHost };
        if (_time.GetUtcNow().ToUnixTimeMilliseconds() > command.ExpiresUnixMs)
            return Fail(command, target, "expired", $"The command expired at {DateTimeOffset.FromUnixTimeMilliseconds(command.ExpiresUnixMs):O} before the collector could start it.");
        if (jvm is null)
            return Fail(command, target, "jvm-gone", $"The collector does not see JVM {command.JvmId} (it exited, or runs on another host).");
        if (_lastDump.TryGetValue(jvm.JvmId, out var last) && _time.GetUtcNow() - last < _options.MinInterval)
            return Fail(command, target, "too-soon", $"The last dump of this JVM was at {last:O}; the minimum interval is {_options.MinInterval}.");
        // One dump per host at a time: a command that arrives meanwhile waits its turn until its expiry (an alert storm
        // on one host serializes its dumps instead of losing them), then is refused as busy.
        if (!await _oneAtATime.WaitAsync(0, ct).ConfigureAwait(false))
        {
            var wait = DateTimeOffset.FromUnixTimeMilliseconds(command.ExpiresUnixMs) - _time.GetUtcNow();
            Publish(command, jvm, CommandResult.Types.State.Accepted, "", "Waiting for another heap dump on this host to finish.");
            if (wait <= TimeSpan.Zero || !await _oneAtATime.WaitAsync(wait, ct).ConfigureAwait(false))
                return Fail(command, target, "busy", "Another heap dump ran on this host (one at a time) until the command expired.");
        }
        try
        {
            return await DumpAndTriageAsync(command, jvm, ct).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Whatever went wrong is reported with the command, never lost in a faulted task.
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
#pragma warning restore CA1031
        {
            return Fail(command, jvm, "internal", $"{ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    private async Task<CommandResult> DumpAndTriageAsync(CollectorCommand command, JvmIdentity jvm, CancellationToken ct)
    {
        var dir = _options.EffectiveDirectory;
        // The JVM writes the file as its own user, inside its own mount namespace: for a container, into its /tmp as
        // seen through /proc/<pid>/root.
        var name = $"apm-{command.CommandId}.hprof";
        string jvmPath, localPath;
        if (!string.IsNullOrEmpty(jvm.ContainerRoot))
        {
            jvmPath = "/tmp/" + name;
            localPath = Path.Combine(jvm.ContainerRoot, "tmp", name);
        }
        else
        {
            EnsureSharedDirectory(dir);
            jvmPath = localPath = Path.Combine(dir, name);
        }

        var free = FreeBytes(Path.GetDirectoryName(localPath)!);
        if (free < _options.MinFreeBytes)
            return Fail(command, jvm, "disk-full", $"Only {free} bytes free at {Path.GetDirectoryName(localPath)}; a dump needs at least {_options.MinFreeBytes}.");

        _lastDump[jvm.JvmId] = _time.GetUtcNow();
        Publish(command, jvm, CommandResult.Types.State.Accepted, "", "Taking a heap dump.");
        var report = ReportStore.NewId();
        try
        {
            using var dumpCt = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var all = command.HeapDump?.AllObjects == true ? " -all" : "";
            var dumpTask = _jcmd(jvm.Pid, $"GC.heap_dump{all} {jvmPath}", _options.DumpTimeout, dumpCt.Token);
            // Watch the file while the JVM writes it: size limit and free disk.
            while (!dumpTask.IsCompleted)
            {
                await Task.WhenAny(dumpTask, Task.Delay(250, ct)).ConfigureAwait(false);
                var size = File.Exists(localPath) ? new FileInfo(localPath).Length : 0;
                if (size > _options.MaxBytes)
                {
                    await dumpCt.CancelAsync().ConfigureAwait(false);
                    return Fail(command, jvm, "too-large", $"The dump passed the {_options.MaxBytes}-byte limit; it was abandoned and deleted (the JVM may still finish writing it).");
                }

                if (FreeBytes(Path.GetDirectoryName(localPath)!) < _options.MinFreeBytes)
                {
                    await dumpCt.CancelAsync().ConfigureAwait(false);
                    return Fail(command, jvm, "disk-full", $"Free disk fell below {_options.MinFreeBytes} bytes while dumping; the dump was abandoned and deleted.");
                }
            }

            string answer;
            try
            {
                answer = await dumpTask.ConfigureAwait(false);
            }
            catch (AttachException ex)
            {
                return Fail(command, jvm, "attach-failed", $"GC.heap_dump failed: {ex.Message}");
            }

            if (!File.Exists(localPath))
                return Fail(command, jvm, "attach-failed", $"The JVM answered but wrote no dump at {jvmPath}: {answer.Trim()}");

            var dumpBytes = new FileInfo(localPath).Length;
            Publish(command, jvm, CommandResult.Types.State.Running, "", $"Triaging a {dumpBytes}-byte dump.");
            var triage = await TriageRunner.RunAsync(localPath, _options.TriageMemoryLimitBytes, _options.TriageTimeout, _options.TriageCommand, ct).ConfigureAwait(false);
            if (triage.Json is null || triage.Html is null) return Fail(command, jvm, triage.Failure!, triage.Reason!);
            var content = (Json: triage.Json, Html: triage.Html);

            var meta = new ReportMeta(report, jvm.JvmId, jvm.Host, jvm.MainClass, _time.GetUtcNow(), command.Trigger, command.AlertId,
                command.CommandId, TriageRunner.TopFinding(content.Json), dumpBytes);
            foreach (var chunk in ReportChunks.Split(new ReportContent(meta, content.Json, content.Html), jvm)) _publishReport(chunk);
            Count("done");
            LogDone(_logger, jvm.JvmId, report, meta.TopFinding);
            return Publish(command, jvm, CommandResult.Types.State.Done, "", "Report " + report + ": " + meta.TopFinding, report);
        }
        finally
        {
            if (!_options.KeepDumps) TryDelete(localPath);
        }
    }

    private CommandResult Fail(CollectorCommand command, JvmIdentity jvm, string failure, string reason)
    {
        Count(failure);
        LogFailed(_logger, command.CommandId, jvm.JvmId, failure, reason);
        return Publish(command, jvm, CommandResult.Types.State.Failed, failure, reason);
    }

    private CommandResult Publish(CollectorCommand command, JvmIdentity jvm, CommandResult.Types.State state, string failure, string reason, string reportId = "")
    {
        var result = new CommandResult
        {
            CommandId = command.CommandId,
            Jvm = jvm,
            TimeUnixNanos = _time.GetUtcNow().ToUnixTimeMilliseconds() * 1_000_000,
            State = state,
            Failure = failure,
            Reason = reason,
            ReportId = reportId,
            Trigger = command.Trigger,
            AlertId = command.AlertId,
        };
        _publish(new CollectorMessage { CommandResult = result });
        return result;
    }

    private void Count(string outcome) => Outcomes.AddOrUpdate(outcome, 1, (_, n) => n + 1);

    private static long FreeBytes(string directory)
    {
        try
        {
            return new DriveInfo(directory).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private static void EnsureSharedDirectory(string dir)
    {
        if (System.IO.Directory.Exists(dir)) return;
        System.IO.Directory.CreateDirectory(dir);
        // Like /tmp: every user's JVM may write its dump here, nobody may delete another's.
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir, (UnixFileMode)0b1_111_111_111);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A dump we cannot delete is left for the operator; it is named after the command.
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Command {CommandId} for {JvmId} refused or failed ({Failure}): {Reason}")]
    private static partial void LogFailed(ILogger logger, string commandId, string jvmId, string failure, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Heap dump of {JvmId} triaged: report {ReportId}: {TopFinding}")]
    private static partial void LogDone(ILogger logger, string jvmId, string reportId, string topFinding);
}
