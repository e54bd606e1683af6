using System.Globalization;
using Apm.Jvm.PerfData;
using Apm.Protocol.V1;
using Google.Protobuf.Collections;
using Microsoft.Extensions.Logging;

namespace Apm.Collector;

/// <summary>
/// Finds the host's JVMs and reads their counters, turning each poll into protocol messages: a
/// <see cref="JvmSample"/> per readable JVM, and a <see cref="JvmStatus"/> when a JVM becomes unreadable
/// or goes away. Keeps each JVM's hsperfdata file mapped between polls (a read is then a memory copy).
/// Not thread-safe: one poll at a time.
/// </summary>
public sealed partial class JvmSampler : IDisposable
{
    private readonly CollectorOptions _options;
    private readonly CollectorMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly JvmDiscovery _discovery;
    private readonly Dictionary<string, Tracked> _jvms = new(StringComparer.Ordinal);

    public JvmSampler(CollectorOptions options, CollectorMetrics metrics, ILogger logger, TimeProvider? time = null)
    {
        _options = options;
        _metrics = metrics;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _discovery = new JvmDiscovery(options.TmpRoot, options.ProcRoot, options.ScanContainers);
    }

    /// <summary>JVM ids being watched now.</summary>
    public IReadOnlyCollection<string> WatchedJvmIds => _jvms.Values.Select(t => t.Identity.JvmId).ToList();

    /// <summary>
    /// Copies of the identities of the JVMs being watched (readable or not), for the attach loop, which runs
    /// on another thread; copies because the sampler completes identities in place.
    /// </summary>
    public IReadOnlyList<JvmIdentity> SnapshotJvms() => _jvms.Values.Select(t => t.Identity.Clone()).ToList();

    /// <summary>Discovers JVMs, reads every one, and returns the messages to publish (samples and status changes).</summary>
    public IReadOnlyList<CollectorMessage> Poll()
    {
        var messages = new List<CollectorMessage>();
        var found = _discovery.Discover();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var jvm in found)
        {
            seen.Add(jvm.PerfDataPath);
            if (!_jvms.ContainsKey(jvm.PerfDataPath))
            {
                var start = ProcessInfo.StartTimeUnixMs(_options.ProcRoot, jvm.Pid);
                if (start is null) continue; // exited between discovery and now
                var identity = new JvmIdentity
                {
                    JvmId = string.Create(CultureInfo.InvariantCulture, $"{_options.EffectiveHostName}:{jvm.Pid}:{start.Value}"),
                    Host = _options.EffectiveHostName,
                    Pid = jvm.Pid,
                    NsPid = jvm.NsPid,
                    User = jvm.User,
                    ContainerRoot = jvm.ContainerRoot ?? string.Empty,
                    StartTimeUnixMs = start.Value,
                };
                _jvms[jvm.PerfDataPath] = new Tracked(jvm, identity);
                _metrics.Discovered();
                LogDiscovered(_logger, identity.JvmId, jvm.PerfDataPath);
            }
        }

        foreach (var (path, tracked) in _jvms.ToList())
        {
            // Discovery lists only JVMs whose process is alive, so absence from this poll means the JVM exited.
            if (!seen.Contains(path))
            {
                _jvms.Remove(path);
                tracked.Dispose();
                _metrics.Gone();
                LogGone(_logger, tracked.Identity.JvmId);
                messages.Add(new CollectorMessage { Status = Status(tracked, JvmStatus.Types.State.Gone, "process exited") });
                continue;
            }

            var message = Read(tracked);
            if (message != null) messages.Add(message);
        }

        _metrics.JvmsWatched = _jvms.Count;
        return messages;
    }

    public void Dispose()
    {
        foreach (var t in _jvms.Values) t.Dispose();
        _jvms.Clear();
    }

    private CollectorMessage? Read(Tracked tracked)
    {
        try
        {
            tracked.File ??= PerfDataFile.Open(tracked.Jvm.PerfDataPath);
            var snapshot = tracked.File.Read();
            var counters = HotSpotCounters.From(snapshot);
            _metrics.SampleRead();
            tracked.Failures = 0;
            tracked.Unreadable = false;
            return new CollectorMessage { Sample = ToSample(tracked, counters) };
        }
        catch (Exception ex) when (ex is PerfDataFormatException or IOException or UnauthorizedAccessException)
        {
            _metrics.Unreadable();
            tracked.File?.Dispose();
            tracked.File = null;
            tracked.Failures++;
            var reason = ex.Message;
            // A JVM that is starting may not have published its counters yet: report only a repeated failure,
            // and only when the reason changes (no status message per poll).
            if (tracked.Failures >= 2 && (!tracked.Unreadable || tracked.LastReason != reason))
            {
                tracked.Unreadable = true;
                tracked.LastReason = reason;
                LogUnreadable(_logger, tracked.Identity.JvmId, tracked.Jvm.PerfDataPath, reason);
                return new CollectorMessage { Status = Status(tracked, JvmStatus.Types.State.Unreadable, reason) };
            }

            return null;
        }
    }

    private JvmSample ToSample(Tracked tracked, JvmCounters c)
    {
        var id = tracked.Identity;
        if (!tracked.IdentityComplete)
        {
            id.MainClass = c.MainClass;
            id.JavaCommand = c.JavaCommand;
            id.JvmVersion = c.VmVersion;
            id.JvmVendor = c.VmVendor;
            id.JvmName = c.VmName;
            id.JavaVersion = c.JavaVersion;
            if (c.VmStartTimeUnixMs > 0) id.StartTimeUnixMs = c.VmStartTimeUnixMs;
            id.GcNames.Clear();
            id.GcNames.AddRange(c.Collectors.Select(x => x.Name));
            tracked.IdentityComplete = true;
        }

        var sample = new JvmSample
        {
            Jvm = id,
            Sequence = ++tracked.Sequence,
            TimeUnixNanos = NowNanos(),
            UptimeSeconds = c.UptimeSeconds,
            LastGcCause = c.LastGcCause,
            GcCause = c.GcCause,
            Safepoints = c.Safepoints,
            SafepointTimeSeconds = c.SafepointTimeSeconds,
            SafepointSyncTimeSeconds = c.SafepointSyncTimeSeconds,
            LiveThreads = c.LiveThreads,
            DaemonThreads = c.DaemonThreads,
            PeakThreads = c.PeakThreads,
            LoadedClasses = c.LoadedClasses,
            UnloadedClasses = c.UnloadedClasses,
        };
        AddSpaces(sample.Spaces, c);
        foreach (var col in c.Collectors)
        {
            sample.Collectors.Add(new Protocol.V1.Collector
            {
                Index = col.Index,
                Name = col.Name,
                Invocations = col.Invocations,
                TimeSeconds = col.TimeSeconds,
                LastEntrySeconds = col.LastEntrySeconds,
                LastExitSeconds = col.LastExitSeconds,
            });
        }

        return sample;
    }

    private static void AddSpaces(RepeatedField<MemorySpace> target, JvmCounters c)
    {
        foreach (var s in c.Spaces)
        {
            target.Add(new MemorySpace
            {
                Pool = s.Pool,
                Type = s.Type,
                UsedBytes = s.UsedBytes,
                CommittedBytes = s.CommittedBytes,
                MaxBytes = s.MaxBytes,
                Counter = s.CounterPrefix,
            });
        }
    }

    private JvmStatus Status(Tracked tracked, JvmStatus.Types.State state, string reason) => new()
    {
        Jvm = tracked.Identity,
        State = state,
        Reason = reason,
        TimeUnixNanos = NowNanos(),
        Path = tracked.Jvm.PerfDataPath,
    };

    private long NowNanos() => (_time.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks * 100;

    [LoggerMessage(Level = LogLevel.Information, Message = "Watching JVM {JvmId} ({Path})")]
    private static partial void LogDiscovered(ILogger logger, string jvmId, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "JVM {JvmId} is gone")]
    private static partial void LogGone(ILogger logger, string jvmId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "JVM {JvmId} is unreadable ({Path}): {Reason}")]
    private static partial void LogUnreadable(ILogger logger, string jvmId, string path, string reason);

    private sealed class Tracked(DiscoveredJvm jvm, JvmIdentity identity) : IDisposable
    {
        public DiscoveredJvm Jvm { get; } = jvm;

        public JvmIdentity Identity { get; } = identity;

        public PerfDataFile? File { get; set; }

        public ulong Sequence { get; set; }

        public bool IdentityComplete { get; set; }

        public int Failures { get; set; }

        public bool Unreadable { get; set; }

        public string? LastReason { get; set; }

        public void Dispose() => File?.Dispose();
    }
}
