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

    /// <summary>
    /// Where dumps are written: <c>apm</c> sets <c>&lt;Apm:DataDirectory&gt;/dumps</c> when this is empty; a library user
    /// that leaves it empty gets <c>$TMPDIR/apm-dumps</c>. Created world-writable with the sticky bit, like /tmp, so JVMs
    /// of other users can write there. The JVM writes the file itself, as its own user and in its own file-system view:
    /// the path must name the same directory for the JVM and the collector, reachable by the JVM's user. JVMs in
    /// containers write into their own /tmp instead (read through /proc/&lt;pid&gt;/root).
    /// </summary>
    public string? Directory { get; set; }

    /// <summary>A dump is refused, or abandoned while written, when the directory's file system has less free space than this.</summary>
    public long MinFreeBytes { get; set; } = 1L << 30;

    /// <summary>A dump growing beyond this is abandoned, and deleted once the JVM stops writing it.</summary>
    public long MaxBytes { get; set; } = 16L << 30;

    /// <summary>Fewest time between two dumps of one JVM.</summary>
    public TimeSpan MinInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Time allowed for the JVM to write the dump.</summary>
    public TimeSpan DumpTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Keep each complete dump after its triage (<c>apm-&lt;command id&gt;.hprof</c> in the directory) instead of deleting it.
    /// Abandoned, partial dumps are deleted either way.
    /// </summary>
    public bool KeepDumps { get; set; }

    /// <summary>
    /// Memory limit of the triage child: its managed heap (DOTNET_GCHeapHardLimit) and, where a memory cgroup can be
    /// created, a hard cap on the whole process (see <see cref="TriageRunner"/>); the dump is memory-mapped on top.
    /// </summary>
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
/// <remarks>
/// Progress: <c>QUEUED</c> (only while another dump holds the host's slot; the guards that can change meanwhile are
/// checked again when the command gets its turn), <c>ACCEPTED</c> (every guard passed), <c>RUNNING</c> (the JVM writes
/// the dump), <c>RUNNING</c> (triage), <c>DONE</c>; or <c>FAILED</c> with a failure and a reason at any point. A dump
/// abandoned while written (size limit, free disk) is reported at once, but the host's slot stays taken until the
/// JVM's <c>GC.heap_dump</c> returned (the JVM cannot be stopped from writing), and the partial file is deleted then.
/// </remarks>
public sealed partial class HeapDumpHandler
{
    /// <summary>How often the file is measured while the JVM writes it.</summary>
    private static readonly TimeSpan WatchInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>SemaphoreSlim waits at most int.MaxValue milliseconds; a command expiring later waits that long.</summary>
    private static readonly TimeSpan MaxWait = TimeSpan.FromMilliseconds(int.MaxValue);

    private readonly HeapDumpOptions _options;
    private readonly ILogger _logger;
    private readonly Action<CollectorMessage> _publish;
    private readonly Action<TriageReportChunk> _publishReport;
    private readonly AttachSampler.JcmdRunner _jcmd;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastDump = new(StringComparer.Ordinal);
    private long _lastResultNanos;

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
    /// Handles <paramref name="command"/> for <paramref name="jvm"/> (null when the collector does not watch that JVM), a
    /// snapshot that is not looked up again after a wait. Returns the final result it published.
    /// </summary>
    public Task<CommandResult> HandleAsync(CollectorCommand command, JvmIdentity? jvm, CancellationToken ct) => HandleAsync(command, _ => jvm, ct);

    /// <summary>
    /// Handles <paramref name="command"/>; <paramref name="findJvm"/> returns the watched JVM with an id, or null, and is
    /// asked again when the command had to wait for another dump. Returns the final result it published.
    /// </summary>
    public async Task<CommandResult> HandleAsync(CollectorCommand command, Func<string, JvmIdentity?> findJvm, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(findJvm);
        var jvm = findJvm(command.JvmId);
        var target = jvm ?? new JvmIdentity { JvmId = command.JvmId, Host = command.TargetHost };
        if (Refusal(command, jvm, target, "") is { } refused) return refused;
        // One dump per host at a time: a command that arrives meanwhile waits its turn until its expiry (an alert storm
        // on one host serializes its dumps instead of losing them), then is refused as busy.
        if (!await _oneAtATime.WaitAsync(0, ct).ConfigureAwait(false))
        {
            Publish(command, target, CommandResult.Types.State.Queued, "", "Waiting for another heap dump on this host to finish; the guards are checked again then.");
            var wait = DateTimeOffset.FromUnixTimeMilliseconds(command.ExpiresUnixMs) - _time.GetUtcNow();
            if (wait > MaxWait) wait = MaxWait;
            if (wait <= TimeSpan.Zero || !await _oneAtATime.WaitAsync(wait, ct).ConfigureAwait(false))
                return Fail(command, target, "busy", "Another heap dump ran on this host (one at a time) until the command expired.");
            // While it waited the JVM may have exited, or been dumped by the command ahead of it.
            jvm = findJvm(command.JvmId);
            if (Refusal(command, jvm, target, " (checked again after waiting for another dump)") is { } late)
            {
                _oneAtATime.Release();
                return late;
            }
        }

        try
        {
            return await DumpAndTriageAsync(command, jvm!, ct).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Whatever went wrong is reported with the command, never lost in a faulted task.
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
#pragma warning restore CA1031
        {
            return Fail(command, jvm!, "internal", $"{ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    /// <summary>The guards that need no dump slot (expiry, JVM known, minimum interval): the published refusal, or null.</summary>
    private CommandResult? Refusal(CollectorCommand command, JvmIdentity? jvm, JvmIdentity target, string when)
    {
        if (_time.GetUtcNow().ToUnixTimeMilliseconds() > command.ExpiresUnixMs)
            return Fail(command, target, "expired", $"The command expired at {DateTimeOffset.FromUnixTimeMilliseconds(command.ExpiresUnixMs):O} before the collector could start it{when}.");
        if (jvm is null)
            return Fail(command, target, "jvm-gone", $"The collector does not see JVM {command.JvmId} (it exited, or runs on another host){when}.");
        if (_lastDump.TryGetValue(jvm.JvmId, out var last) && _time.GetUtcNow() - last < _options.MinInterval)
            return Fail(command, jvm, "too-soon", $"The last dump of this JVM was at {last:O}; the minimum interval is {_options.MinInterval}{when}.");
        return null;
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

        var localDir = Path.GetDirectoryName(localPath)!;
        var free = FreeBytes(localDir);
        if (free < _options.MinFreeBytes)
            return Fail(command, jvm, "disk-full", $"Only {free} bytes free at {localDir}; a dump needs at least {_options.MinFreeBytes}.");

        _lastDump[jvm.JvmId] = _time.GetUtcNow();
        Publish(command, jvm, CommandResult.Types.State.Accepted, "", $"Every guard passed ({free} bytes free at {localDir}); taking a heap dump.");
        var all = command.HeapDump?.AllObjects == true;
        var keep = false;
        try
        {
            var dumpTask = _jcmd(jvm.Pid, $"GC.heap_dump{(all ? " -all" : "")} {jvmPath}", _options.DumpTimeout, ct);
            Publish(command, jvm, CommandResult.Types.State.Running, "", all
                ? $"The JVM is writing a heap dump of every object to {jvmPath}."
                : $"The JVM is writing a heap dump of its live objects (after a full GC) to {jvmPath}.");
            // Watch the file while the JVM writes it: size limit and free disk. A dump that crosses one is reported at
            // once but keeps the slot until the JVM's call returns: the JVM cannot be stopped, and deleting the file
            // under it would only hide the space it still fills.
            CommandResult? abandoned = null;
            while (!dumpTask.IsCompleted)
            {
                await Task.WhenAny(dumpTask, Task.Delay(WatchInterval, ct)).ConfigureAwait(false);
                ct.ThrowIfCancellationRequested();
                abandoned ??= LimitCrossed(command, jvm, localPath);
            }

            string answer;
            try
            {
                answer = await dumpTask.ConfigureAwait(false);
            }
            catch (AttachException ex)
            {
                // After a timeout the JVM may still be writing: the slot stays taken until it closes the file or exits.
                if (ex.Reason == AttachFailure.Timeout) await WaitWhileWritingAsync(jvm.Pid, jvmPath, ct).ConfigureAwait(false);
                return abandoned ?? Fail(command, jvm, "attach-failed", $"GC.heap_dump failed: {ex.Message}");
            }

            if (abandoned is not null) return abandoned;
            if (!File.Exists(localPath))
            {
                return Fail(command, jvm, "attach-failed", $"The JVM answered but wrote no dump at {jvmPath}: {answer.Trim()} (the JVM writes the file " +
                    "itself, as its own user and in its own file-system view: the dump directory must be the same path for the JVM and the collector, and writable by the JVM's user)");
            }

            // A dump that crossed a limit after the last look is judged the same way.
            if (LimitCrossed(command, jvm, localPath) is { } late) return late;
            // HotSpot leaves what it wrote when a write fails ("Dump file is incomplete: No space left on device").
            if (answer.Contains("Dump file is incomplete", StringComparison.Ordinal))
            {
                return Fail(command, jvm, answer.Contains("No space left", StringComparison.Ordinal) ? "disk-full" : "attach-failed",
                    $"The JVM could not write the whole dump: {answer.Trim()}");
            }

            var dumpBytes = new FileInfo(localPath).Length;
            keep = _options.KeepDumps;
            Publish(command, jvm, CommandResult.Types.State.Running, "", $"Triaging a {dumpBytes}-byte dump.");
            var triage = await TriageRunner.RunAsync(localPath, _options.TriageMemoryLimitBytes, _options.TriageTimeout, _options.TriageCommand, _logger, ct).ConfigureAwait(false);
            if (triage.Json is null || triage.Html is null) return Fail(command, jvm, triage.Failure!, triage.Reason!);
            var content = (Json: triage.Json, Html: triage.Html);

            var report = ReportStore.NewId();
            var meta = new ReportMeta(report, jvm.JvmId, jvm.Host, jvm.MainClass, _time.GetUtcNow(), command.Trigger, command.AlertId,
                command.CommandId, TriageRunner.TopFinding(content.Json), dumpBytes);
            foreach (var chunk in ReportChunks.Split(new ReportContent(meta, content.Json, content.Html), jvm)) _publishReport(chunk);
            Count("done");
            LogDone(_logger, jvm.JvmId, report, meta.TopFinding);
            return Publish(command, jvm, CommandResult.Types.State.Done, "", "Report " + report + ": " + meta.TopFinding, report);
        }
        finally
        {
            if (!keep) TryDelete(localPath);
        }
    }

    /// <summary>The published refusal when the file passed the size limit or the free disk fell below its minimum; else null.</summary>
    private CommandResult? LimitCrossed(CollectorCommand command, JvmIdentity jvm, string localPath)
    {
        var size = File.Exists(localPath) ? new FileInfo(localPath).Length : 0;
        if (size > _options.MaxBytes)
        {
            return Fail(command, jvm, "too-large", $"The dump passed the {_options.MaxBytes}-byte limit ({size} bytes written); it is abandoned, and " +
                "its file is deleted as soon as the JVM stops writing it.");
        }

        var dir = Path.GetDirectoryName(localPath)!;
        var free = FreeBytes(dir);
        if (free < _options.MinFreeBytes)
        {
            return Fail(command, jvm, "disk-full", $"Free disk at {dir} fell to {free} bytes while dumping ({size} bytes written), below the " +
                $"{_options.MinFreeBytes}-byte minimum; the dump is abandoned, and its file is deleted as soon as the JVM stops writing it.");
        }

        return null;
    }

    /// <summary>Waits while JVM <paramref name="pid"/> holds <paramref name="jvmPath"/> open (its own path for the file), or until it exits.</summary>
    private static async Task WaitWhileWritingAsync(int pid, string jvmPath, CancellationToken ct)
    {
        while (HoldsOpen(pid, jvmPath)) await Task.Delay(WatchInterval, ct).ConfigureAwait(false);
    }

    /// <summary>Whether a file descriptor of <paramref name="pid"/> points at <paramref name="path"/>; false when that cannot be read.</summary>
    private static bool HoldsOpen(int pid, string path)
    {
        try
        {
            foreach (var fd in System.IO.Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                if (string.Equals(new FileInfo(fd).LinkTarget, path, StringComparison.Ordinal)) return true;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The JVM exited (or its descriptors are not ours to read): nothing left to wait for.
        }

        return false;
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
            TimeUnixNanos = NextResultNanos(),
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

    /// <summary>
    /// The time of a result, strictly later than the previous one: a command's results are points of one series in
    /// InfluxDB, where two with the same time would overwrite each other.
    /// </summary>
    private long NextResultNanos()
    {
        var now = (_time.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks * 100;
        while (true)
        {
            var last = Interlocked.Read(ref _lastResultNanos);
            var next = Math.Max(now, last + 1);
            if (Interlocked.CompareExchange(ref _lastResultNanos, next, last) == last) return next;
        }
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
