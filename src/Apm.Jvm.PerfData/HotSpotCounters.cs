using System.Globalization;

namespace Apm.Jvm.PerfData;

/// <summary>A memory pool of a JVM: a generation space of the heap, metaspace or the compressed class space.</summary>
/// <param name="Pool">"eden", "survivor-0", "survivor-1", "old", "metaspace", "compressed-class-space" (or the raw space name for unknown layouts).</param>
/// <param name="Type">"heap" or "non_heap" (OpenTelemetry's jvm.memory.type values).</param>
/// <param name="UsedBytes">Bytes in use.</param>
/// <param name="CommittedBytes">Bytes reserved from the OS now (HotSpot's capacity).</param>
/// <param name="MaxBytes">Largest size the pool may grow to; -1 when unknown or unbounded.</param>
/// <param name="CounterPrefix">The hsperfdata prefix the values came from, e.g. "sun.gc.generation.0.space.0".</param>
public sealed record MemorySpaceCounters(string Pool, string Type, long UsedBytes, long CommittedBytes, long MaxBytes, string CounterPrefix);

/// <summary>One garbage collector of a JVM (G1 has young, full and concurrent-cycle pauses).</summary>
/// <param name="Index">N in sun.gc.collector.N.</param>
/// <param name="Name">HotSpot's name, e.g. "G1 young collection pauses".</param>
/// <param name="Invocations">Collections since the JVM started.</param>
/// <param name="TimeSeconds">Total time spent in collections.</param>
/// <param name="LastEntrySeconds">JVM uptime when the last collection started; 0 when none ran.</param>
/// <param name="LastExitSeconds">JVM uptime when the last collection ended; 0 when none ran.</param>
public sealed record CollectorCounters(int Index, string Name, long Invocations, double TimeSeconds, double LastEntrySeconds, double LastExitSeconds);

/// <summary>The HotSpot counters Apm uses, typed and in seconds and bytes. Absent counters are 0, "" or -1 (max sizes).</summary>
public sealed record JvmCounters
{
    /// <summary>Ticks per second of the JVM's high-resolution clock (sun.os.hrt.frequency).</summary>
    public required long TickFrequency { get; init; }

    /// <summary>Seconds since the JVM started (sun.os.hrt.ticks, refreshed by the JVM every 50 ms by default).</summary>
    public required double UptimeSeconds { get; init; }

    /// <summary>When the JVM began to start, Unix milliseconds (sun.rt.createVmBeginTime).</summary>
    public required long VmStartTimeUnixMs { get; init; }

    /// <summary>Main class or jar and the program arguments (sun.rt.javaCommand).</summary>
    public required string JavaCommand { get; init; }

    /// <summary>The first token of <see cref="JavaCommand"/>: the main class, or the jar for "-jar x.jar".</summary>
    public required string MainClass { get; init; }

    /// <summary>java.vm.version, e.g. "17.0.15+6-Debian-1deb12u1".</summary>
    public required string VmVersion { get; init; }

    /// <summary>java.vm.vendor.</summary>
    public required string VmVendor { get; init; }

    /// <summary>java.vm.name, e.g. "OpenJDK 64-Bit Server VM".</summary>
    public required string VmName { get; init; }

    /// <summary>java.version, e.g. "17.0.15".</summary>
    public required string JavaVersion { get; init; }

    /// <summary>Heap spaces by generation, then metaspace and the compressed class space.</summary>
    public required IReadOnlyList<MemorySpaceCounters> Spaces { get; init; }

    /// <summary>Every collector the JVM declares, in index order.</summary>
    public required IReadOnlyList<CollectorCounters> Collectors { get; init; }

    /// <summary>Cause of the last collection (sun.gc.lastCause), e.g. "G1 Evacuation Pause".</summary>
    public required string LastGcCause { get; init; }

    /// <summary>Cause of the collection running now, "No GC" between collections (sun.gc.cause).</summary>
    public required string GcCause { get; init; }

    /// <summary>Safepoints since start (sun.rt.safepoints).</summary>
    public required long Safepoints { get; init; }

    /// <summary>Total time at safepoints (sun.rt.safepointTime).</summary>
    public required double SafepointTimeSeconds { get; init; }

    /// <summary>Total time to bring threads to safepoints (sun.rt.safepointSyncTime).</summary>
    public required double SafepointSyncTimeSeconds { get; init; }

    /// <summary>Live Java threads (java.threads.live).</summary>
    public required long LiveThreads { get; init; }

    /// <summary>Live daemon threads (java.threads.daemon).</summary>
    public required long DaemonThreads { get; init; }

    /// <summary>Peak live threads (java.threads.livePeak).</summary>
    public required long PeakThreads { get; init; }

    /// <summary>Classes loaded since start, shared (CDS) ones included, as jstat -class counts them.</summary>
    public required long LoadedClasses { get; init; }

    /// <summary>Classes unloaded since start, shared ones included, as jstat -class counts them.</summary>
    public required long UnloadedClasses { get; init; }
}

/// <summary>Turns a raw <see cref="PerfDataSnapshot"/> into <see cref="JvmCounters"/>.</summary>
public static class HotSpotCounters
{
    // Counter names are built once: a sample then costs dictionary probes, not string concatenation.
    private const int MaxGenerations = 4;
    private const int MaxSpaces = 8;
    private const int MaxCollectors = 16;
    private static readonly GenerationNames[] Generations = Enumerable.Range(0, MaxGenerations).Select(g => new GenerationNames(g)).ToArray();
    private static readonly CollectorNames[] CollectorNameTable = Enumerable.Range(0, MaxCollectors).Select(c => new CollectorNames(c)).ToArray();
    private static readonly SpaceNames Metaspace = new("sun.gc.metaspace");
    private static readonly SpaceNames CompressedClassSpace = new("sun.gc.compressedclassspace");

    /// <summary>
    /// Reads the typed view. Costs about a hundred dictionary probes and one small list per collection kind.
    /// Throws <see cref="PerfDataFormatException"/> when sun.os.hrt.frequency is missing or not positive
    /// (every HotSpot JVM writes it; without it no time can be converted).
    /// </summary>
    public static JvmCounters From(PerfDataSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (!snapshot.TryGetLong("sun.os.hrt.frequency", out var freq) || freq <= 0)
        {
            throw new PerfDataFormatException("sun.os.hrt.frequency is missing or not positive: not a HotSpot buffer");
        }

        double f = freq;
        var command = snapshot.GetStringOrDefault("sun.rt.javaCommand");
        return new JvmCounters
        {
            TickFrequency = freq,
            UptimeSeconds = snapshot.GetLongOrDefault("sun.os.hrt.ticks") / f,
            VmStartTimeUnixMs = snapshot.GetLongOrDefault("sun.rt.createVmBeginTime"),
            JavaCommand = command,
            MainClass = MainClassOf(command),
            VmVersion = snapshot.GetStringOrDefault("java.property.java.vm.version"),
            VmVendor = snapshot.GetStringOrDefault("java.property.java.vm.vendor"),
            VmName = snapshot.GetStringOrDefault("java.property.java.vm.name"),
            JavaVersion = snapshot.GetStringOrDefault("java.property.java.version"),
            Spaces = ReadSpaces(snapshot),
            Collectors = ReadCollectors(snapshot, f),
            LastGcCause = snapshot.GetStringOrDefault("sun.gc.lastCause"),
            GcCause = snapshot.GetStringOrDefault("sun.gc.cause"),
            Safepoints = snapshot.GetLongOrDefault("sun.rt.safepoints"),
            SafepointTimeSeconds = snapshot.GetLongOrDefault("sun.rt.safepointTime") / f,
            SafepointSyncTimeSeconds = snapshot.GetLongOrDefault("sun.rt.safepointSyncTime") / f,
            LiveThreads = snapshot.GetLongOrDefault("java.threads.live"),
            DaemonThreads = snapshot.GetLongOrDefault("java.threads.daemon"),
            PeakThreads = snapshot.GetLongOrDefault("java.threads.livePeak"),
            // jstat -class prints loaded + shared loaded (its jstat_options file adds the two).
            LoadedClasses = snapshot.GetLongOrDefault("java.cls.loadedClasses") + snapshot.GetLongOrDefault("java.cls.sharedLoadedClasses"),
            UnloadedClasses = snapshot.GetLongOrDefault("java.cls.unloadedClasses") + snapshot.GetLongOrDefault("java.cls.sharedUnloadedClasses"),
        };
    }

    /// <summary>The main class or jar of a sun.rt.javaCommand value: its first token, skipping "-jar".</summary>
    public static string MainClassOf(string javaCommand)
    {
        ArgumentNullException.ThrowIfNull(javaCommand);
        var tokens = javaCommand.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        if (tokens.Length == 0) return string.Empty;
        // The launcher records "x.jar args" for "java -jar x.jar args"; "-jar" appears only from custom launchers.
        if (tokens[0] == "-jar") return tokens.Length > 1 ? tokens[1] : string.Empty;
        return tokens[0];
    }

    private static List<MemorySpaceCounters> ReadSpaces(PerfDataSnapshot s)
    {
        var result = new List<MemorySpaceCounters>(6);
        foreach (var gen in Generations)
        {
            if (!s.TryGetString(gen.Name, out var genName)) break;
            var spaces = (int)Math.Clamp(s.GetLongOrDefault(gen.Spaces), 0, MaxSpaces);
            for (var i = 0; i < spaces; i++)
            {
                var space = gen.SpaceTable[i];
                if (!s.TryGetString(space.Name, out var spaceName)) continue;
                result.Add(new MemorySpaceCounters(PoolOf(genName, spaceName, i), "heap",
                    s.GetLongOrDefault(space.Used), s.GetLongOrDefault(space.Capacity), MaxOrUnknown(s, space.MaxCapacity), space.Prefix));
            }
        }

        AddNonHeap(s, result, "metaspace", Metaspace);
        AddNonHeap(s, result, "compressed-class-space", CompressedClassSpace);
        return result;
    }

    private static void AddNonHeap(PerfDataSnapshot s, List<MemorySpaceCounters> result, string pool, SpaceNames names)
    {
        if (!s.TryGetLong(names.Used, out var used)) return;
        result.Add(new MemorySpaceCounters(pool, "non_heap", used, s.GetLongOrDefault(names.Capacity), MaxOrUnknown(s, names.MaxCapacity), names.Prefix));
    }

    private static string PoolOf(string generation, string space, int index) => space switch
    {
        "eden" => "eden",
        "s0" => "survivor-0",
        "s1" => "survivor-1",
        "old" => "old",
        // G1 names its single old space "space" inside the generation named "old".
        _ when generation == "old" && index == 0 => "old",
        _ => space,
    };

    private static long MaxOrUnknown(PerfDataSnapshot s, string name) => s.TryGetLong(name, out var v) && v > 0 ? v : -1;

    private static List<CollectorCounters> ReadCollectors(PerfDataSnapshot s, double freq)
    {
        var result = new List<CollectorCounters>(3);
        foreach (var c in CollectorNameTable)
        {
            if (!s.TryGetString(c.Name, out var name)) break;
            result.Add(new CollectorCounters(c.Index, name, s.GetLongOrDefault(c.Invocations), s.GetLongOrDefault(c.Time) / freq,
                s.GetLongOrDefault(c.LastEntryTime) / freq, s.GetLongOrDefault(c.LastExitTime) / freq));
        }

        return result;
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private sealed class SpaceNames(string prefix)
    {
        public string Prefix { get; } = prefix;
        public string Name { get; } = prefix + ".name";
        public string Used { get; } = prefix + ".used";
        public string Capacity { get; } = prefix + ".capacity";
        public string MaxCapacity { get; } = prefix + ".maxCapacity";
    }

    private sealed class GenerationNames
    {
        public GenerationNames(int g)
        {
            Name = Invariant($"sun.gc.generation.{g}.name");
            Spaces = Invariant($"sun.gc.generation.{g}.spaces");
            SpaceTable = Enumerable.Range(0, MaxSpaces).Select(i => new SpaceNames(Invariant($"sun.gc.generation.{g}.space.{i}"))).ToArray();
        }

        public string Name { get; }
        public string Spaces { get; }
        public SpaceNames[] SpaceTable { get; }
    }

    private sealed class CollectorNames(int c)
    {
        public int Index { get; } = c;
        public string Name { get; } = Invariant($"sun.gc.collector.{c}.name");
        public string Invocations { get; } = Invariant($"sun.gc.collector.{c}.invocations");
        public string Time { get; } = Invariant($"sun.gc.collector.{c}.time");
        public string LastEntryTime { get; } = Invariant($"sun.gc.collector.{c}.lastEntryTime");
        public string LastExitTime { get; } = Invariant($"sun.gc.collector.{c}.lastExitTime");
    }
}
