using System.Globalization;
using Apm.Protocol.V1;

namespace Apm.FleetSimulator;

/// <summary>
/// One synthetic HotSpot JVM (G1, 1 GiB heap) whose counters evolve like a real one's between samples: eden fills and
/// empties with young collections, survivors promote into the old generation, full collections reclaim it. A
/// <see cref="JvmKind.Leaking"/> JVM keeps what it promotes (the seed's statements held by a timer) and its finalizer
/// counts climb; a <see cref="JvmKind.Restarting"/> JVM comes back under a new id. Messages are built as
/// <c>Apm.Collector.JvmSampler</c> builds them. Deterministic for a seed; not thread-safe.
/// </summary>
public sealed class SimulatedJvm
{
    /// <summary>Most heap the simulated JVM may use (-Xmx1g).</summary>
    public const long HeapMaxBytes = 1L << 30;

    private const long EdenCommitted = 256L << 20;
    private const long OldCommitted = 768L << 20;
    private const long OldBaseBytes = 96L << 20;

    private readonly Random _random;
    private readonly string _host;
    private readonly SimulationProfile _profile;
    private int _pid;
    private DateTimeOffset _lastStep;
    private int _samplesUntilRestart;
    private long _eden;
    private long _oldTransient;
    private long _leakedBytes;
    private long _youngCount;
    private double _youngTime;
    private long _fullCount;
    private double _fullTime;
    private double _lastGcEntry;
    private double _lastGcExit;
    private long _safepoints;
    private double _finalizerPending;
    private long _finalizerRegistered;

    /// <param name="index">Position in the fleet; gives the pid and the main class.</param>
    /// <param name="kind">How the JVM behaves.</param>
    /// <param name="host">The host name in the JVM's identity.</param>
    /// <param name="start">When the JVM started (its first sample comes at or after this).</param>
    /// <param name="seed">Seeds the JVM's own random source, so runs repeat.</param>
    /// <param name="profile">Rates of growth and restarts; null = <see cref="SimulationProfile.Default"/>.</param>
    public SimulatedJvm(int index, JvmKind kind, string host, DateTimeOffset start, int seed, SimulationProfile? profile = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        Index = index;
        Kind = kind;
        _host = host;
        _profile = profile ?? SimulationProfile.Default;
        _random = new Random(seed);
        _pid = 1000 + index;
        Identity = NewIdentity(start);
        _lastStep = start;
        _samplesUntilRestart = NextRestartCountdown();
    }

    /// <summary>Position in the fleet.</summary>
    public int Index { get; }

    /// <summary>How the JVM behaves.</summary>
    public JvmKind Kind { get; }

    /// <summary>The current incarnation's identity (replaced on a restart).</summary>
    public JvmIdentity Identity { get; private set; }

    /// <summary>The current incarnation's JVM id.</summary>
    public string JvmId => Identity.JvmId;

    /// <summary>Sequence number of the last sample of this incarnation (0 before the first).</summary>
    public ulong Sequence { get; private set; }

    /// <summary>Restarts so far.</summary>
    public int Restarts { get; private set; }

    /// <summary>Old generation in use after the last step.</summary>
    public long OldUsedBytes => OldBaseBytes + _leakedBytes + _oldTransient;

    /// <summary>Objects waiting in the finalization queue after the last step.</summary>
    public long FinalizerPending => (long)_finalizerPending;

    /// <summary>
    /// Advances the JVM to <paramref name="now"/> and appends what a collector would publish: a Gone status and a
    /// restart first when one is due, then one <see cref="JvmSample"/>, and every
    /// <see cref="SimulationProfile.FinalizerEvery"/> samples a <see cref="FinalizerSample"/> (and, for a leaking JVM,
    /// a class histogram).
    /// </summary>
    public void Step(DateTimeOffset now, List<CollectorMessage> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (now < _lastStep) now = _lastStep; // a clock that steps back must not make counters go back
        if (Kind == JvmKind.Restarting && Sequence > 0 && --_samplesUntilRestart <= 0) Restart(now, output);
        var dt = Math.Max(0.001, (now - _lastStep).TotalSeconds);
        _lastStep = now;
        Advance(dt);
        var time = ToNanos(now);
        Sequence++;
        output.Add(new CollectorMessage { Sample = Sample(now, time) });
        if (Sequence % (ulong)_profile.FinalizerEvery == 0)
        {
            output.Add(new CollectorMessage { Finalizer = Finalizer(time) });
            if (Kind == JvmKind.Leaking) output.Add(new CollectorMessage { Histogram = Histogram(time) });
        }
    }

    private void Advance(double dt)
    {
        // Allocation fills eden; each time it is full a young collection promotes a little into the old generation.
        var allocated = (long)(_profile.AllocationBytesPerSecond * dt * (0.8 + (0.4 * _random.NextDouble())));
        _eden += allocated;
        var uptime = UptimeSeconds(_lastStep);
        while (_eden >= EdenCommitted)
        {
            _eden -= EdenCommitted;
            _youngCount++;
            var pause = 0.004 + (0.004 * _random.NextDouble());
            _youngTime += pause;
            _safepoints++;
            _lastGcEntry = uptime;
            _lastGcExit = uptime + pause;
            _oldTransient += (long)(EdenCommitted * 0.02);
        }

        if (Kind == JvmKind.Leaking)
        {
            _leakedBytes += (long)(_profile.LeakBytesPerSecond * dt);
            _finalizerPending += _profile.FinalizerBacklogPerSecond * dt;
            _finalizerRegistered += (long)(_profile.LeakObjectsPerSecond * dt);
        }
        else
        {
            // A healthy queue drains: a handful of objects at most.
            _finalizerPending = _random.Next(0, 4);
            _finalizerRegistered = 2_000 + _random.Next(0, 200);
        }

        // A full collection when the old generation passes 70 %: transient objects go, leaked ones stay.
        if (OldUsedBytes > OldCommitted * 7 / 10)
        {
            _oldTransient = 0;
            _fullCount++;
            var pause = 0.15 + (0.001 * (_leakedBytes >> 20));
            _fullTime += pause;
            _safepoints++;
            _lastGcEntry = uptime;
            _lastGcExit = uptime + pause;
        }

        // A full old generation stays full (collecting back-to-back, as a real JVM does before OutOfMemoryError).
        _leakedBytes = Math.Min(_leakedBytes, OldCommitted - OldBaseBytes - (16L << 20));
        _safepoints += (long)Math.Ceiling(dt);
    }

    private JvmSample Sample(DateTimeOffset now, long time)
    {
        var sample = new JvmSample
        {
            Jvm = Identity,
            Sequence = Sequence,
            TimeUnixNanos = time,
            UptimeSeconds = UptimeSeconds(now),
            LastGcCause = _fullCount > 0 ? "G1 Humongous Allocation" : "G1 Evacuation Pause",
            GcCause = "No GC",
            Safepoints = _safepoints,
            SafepointTimeSeconds = _youngTime + _fullTime + (_safepoints * 0.0001),
            SafepointSyncTimeSeconds = _safepoints * 0.00002,
            LiveThreads = 40 + (Index % 20),
            DaemonThreads = 30 + (Index % 10),
            PeakThreads = 64,
            LoadedClasses = 9_000 + (Index % 500),
            UnloadedClasses = 12,
        };
        sample.Spaces.Add(Space("eden", "heap", _eden, EdenCommitted, -1, "sun.gc.generation.0.space.0"));
        sample.Spaces.Add(Space("survivor-0", "heap", 0, 16L << 20, -1, "sun.gc.generation.0.space.1"));
        sample.Spaces.Add(Space("survivor-1", "heap", 8L << 20, 16L << 20, -1, "sun.gc.generation.0.space.2"));
        sample.Spaces.Add(Space("old", "heap", OldUsedBytes, OldCommitted, HeapMaxBytes, "sun.gc.generation.1.space.0"));
        sample.Spaces.Add(Space("metaspace", "non_heap", 60L << 20, 64L << 20, -1, "sun.gc.metaspace"));
        sample.Spaces.Add(Space("compressed-class-space", "non_heap", 7L << 20, 8L << 20, 1L << 30, "sun.gc.compressedclassspace"));
        sample.Collectors.Add(new Protocol.V1.Collector
        {
            Index = 0, Name = "G1 incremental collections", Invocations = _youngCount, TimeSeconds = _youngTime,
            LastEntrySeconds = _lastGcEntry, LastExitSeconds = _lastGcExit,
        });
        sample.Collectors.Add(new Protocol.V1.Collector
        {
            Index = 1, Name = "G1 stop-the-world full collections", Invocations = _fullCount, TimeSeconds = _fullTime,
            LastEntrySeconds = _fullCount > 0 ? _lastGcEntry : 0, LastExitSeconds = _fullCount > 0 ? _lastGcExit : 0,
        });
        return sample;
    }

    private FinalizerSample Finalizer(long time)
    {
        var f = new FinalizerSample { Jvm = Identity, TimeUnixNanos = time, PendingTotal = FinalizerPending };
        if (FinalizerPending > 0)
        {
            f.Classes.Add(new FinalizerClassCount
            {
                ClassName = Kind == JvmKind.Leaking ? "com.example.jdbc.PreparedStatementImpl" : "java.util.zip.Inflater",
                Count = FinalizerPending,
            });
        }

        return f;
    }

    private ClassHistogramSample Histogram(long time)
    {
        // The seed's signature: Finalizer, the statement class and its timer task with identical, growing counts.
        var n = _finalizerRegistered;
        var h = new ClassHistogramSample { Jvm = Identity, TimeUnixNanos = time, FinalizerRegistered = n };
        h.Rows.Add(new HistogramRow { ClassName = "java.lang.ref.Finalizer", Instances = n, Bytes = n * 40, Module = "java.base@17.0.15" });
        h.Rows.Add(new HistogramRow { ClassName = "com.example.jdbc.PreparedStatementImpl", Instances = n, Bytes = n * 32, KeptBecause = "finalizable" });
        h.Rows.Add(new HistogramRow { ClassName = "com.example.jdbc.CancelTask", Instances = n, Bytes = n * 40, KeptBecause = "timer-task" });
        h.TotalInstances = (n * 3) + 1_000_000;
        h.TotalBytes = (n * 112) + OldUsedBytes;
        return h;
    }

    private void Restart(DateTimeOffset now, List<CollectorMessage> output)
    {
        output.Add(new CollectorMessage
        {
            Status = new JvmStatus { Jvm = Identity, State = JvmStatus.Types.State.Gone, Reason = "process exited", TimeUnixNanos = ToNanos(now) },
        });
        Restarts++;
        _pid += 100_000; // a new process gets a new pid; the start time alone would also make the id new
        Identity = NewIdentity(now);
        Sequence = 0;
        _eden = 0;
        _oldTransient = 0;
        _leakedBytes = 0;
        _youngCount = 0;
        _youngTime = 0;
        _fullCount = 0;
        _fullTime = 0;
        _lastGcEntry = 0;
        _lastGcExit = 0;
        _safepoints = 0;
        _finalizerPending = 0;
        _samplesUntilRestart = NextRestartCountdown();
    }

    private JvmIdentity NewIdentity(DateTimeOffset start)
    {
        var startMs = start.ToUnixTimeMilliseconds();
        var identity = new JvmIdentity
        {
            // The collector's id format: host:pid:start time (ms), so a restart always yields a new id.
            JvmId = string.Create(CultureInfo.InvariantCulture, $"{_host}:{_pid}:{startMs}"),
            Host = _host,
            Pid = _pid,
            NsPid = _pid,
            User = "app",
            StartTimeUnixMs = startMs,
            MainClass = string.Create(CultureInfo.InvariantCulture, $"com.example.service{Index % 50}.Main"),
            JavaCommand = string.Create(CultureInfo.InvariantCulture, $"com.example.service{Index % 50}.Main --port 8080"),
            JvmVersion = "17.0.15+6-Debian-1deb12u1",
            JvmVendor = "Debian",
            JvmName = "OpenJDK 64-Bit Server VM",
            JavaVersion = "17.0.15",
        };
        identity.GcNames.Add("G1 incremental collections");
        identity.GcNames.Add("G1 stop-the-world full collections");
        return identity;
    }

    private int NextRestartCountdown()
    {
        var mean = _profile.RestartAfterSamples;
        return Math.Max(2, _random.Next(mean / 2, (mean * 3 / 2) + 1));
    }

    private double UptimeSeconds(DateTimeOffset now) => Math.Max(0, (now.ToUnixTimeMilliseconds() - Identity.StartTimeUnixMs) / 1000.0);

    private static MemorySpace Space(string pool, string type, long used, long committed, long max, string counter) =>
        new() { Pool = pool, Type = type, UsedBytes = used, CommittedBytes = committed, MaxBytes = max, Counter = counter };

    private static long ToNanos(DateTimeOffset t) => (t.UtcTicks - DateTime.UnixEpoch.Ticks) * 100;
}
