using Apm.Jvm.PerfData;
using Apm.Testing;

namespace Apm.Jvm.PerfData.Tests;

/// <summary>Our reading of a live JVM's file against jcmd PerfCounter.print on the same JVM, for three collectors.</summary>
public class HotSpotCountersTests
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData("-XX:+UseG1GC", "G1")]
    [InlineData("-XX:+UseParallelGC", "Parallel")]
    [InlineData("-XX:+UseSerialGC", "Serial")]
    public async Task Every_counter_jcmd_prints_is_read_from_the_mapped_file_with_the_same_value(string gcOption, string gcPrefix)
    {
        using var jvm = JavaFixture.Start("IdleService", [gcOption, "-Xmx128m"], ["arg1"]);
        await jvm.WaitForOutputAsync("READY", StartTimeout);
        await jvm.WaitForPerfDataAsync(StartTimeout);
        using var file = PerfDataFile.Open(jvm.PerfDataPath);

        var before = file.Read();
        var jcmd = JcmdOracle.PerfCounters(jvm);
        var after = file.Read();

        Assert.True(jcmd.Count > 100, $"jcmd printed only {jcmd.Count} counters");
        foreach (var (name, (isString, text)) in jcmd)
        {
            if (name.StartsWith("sun.perfdata.", StringComparison.Ordinal)) continue; // the prologue, checked below
            Assert.True(after.Contains(name), $"{name} missing from the file");
            if (isString)
            {
                Assert.True(after.TryGetString(name, out var s), name + " is not a string");
                if (Variability(after, name) == PerfDataVariability.Constant) Assert.Equal(text, s);
                continue;
            }

            Assert.True(after.TryGetLong(name, out var late), name + " is not a long");
            var value = jcmd.Long(name);
            if (!before.TryGetLong(name, out var early)) continue; // created by the attach itself
            switch (Variability(after, name))
            {
                case PerfDataVariability.Constant:
                    Assert.Equal(value, early);
                    Assert.Equal(value, late);
                    break;
                case PerfDataVariability.Monotonic:
                    Assert.InRange(value, early, late);
                    break;
            }
        }

        // jcmd shows the prologue's fields as pseudo counters; they are properties of the snapshot.
        Assert.Equal(jcmd.Long("sun.perfdata.size"), after.BufferSize);
        Assert.Equal(jcmd.Long("sun.perfdata.overflow"), after.OverflowBytes);
        Assert.InRange(jcmd.Long("sun.perfdata.used"), before.UsedBytes, after.UsedBytes);
        Assert.InRange(jcmd.Long("sun.perfdata.timestamp"), before.ModificationTimeStamp, after.ModificationTimeStamp);
        Assert.Equal(2, jcmd.Long("sun.perfdata.majorVersion"));
        Assert.Equal(0, jcmd.Long("sun.perfdata.minorVersion"));
        Assert.Equal(jcmd.Count - 6, jcmd.Keys.Count(after.Contains));

        Assert.Contains(gcPrefix, after.GetStringOrDefault("sun.gc.collector.0.name"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-XX:+UseG1GC", "G1")]
    [InlineData("-XX:+UseParallelGC", "Parallel")]
    [InlineData("-XX:+UseSerialGC", "Serial")]
    public async Task Typed_counters_match_jcmd(string gcOption, string gcPrefix)
    {
        using var jvm = JavaFixture.Start("IdleService", [gcOption, "-Xmx128m"], ["arg1", "arg2"]);
        await jvm.WaitForOutputAsync("READY", StartTimeout);
        await jvm.WaitForPerfDataAsync(StartTimeout);
        using var file = PerfDataFile.Open(jvm.PerfDataPath);

        var before = HotSpotCounters.From(file.Read());
        var j = JcmdOracle.PerfCounters(jvm);
        var after = HotSpotCounters.From(file.Read());

        Assert.Equal(j.Long("sun.os.hrt.frequency"), after.TickFrequency);
        Assert.Equal("IdleService arg1 arg2", after.JavaCommand);
        Assert.Equal(j["sun.rt.javaCommand"].Value, after.JavaCommand);
        Assert.Equal("IdleService", after.MainClass);
        Assert.Equal(j["java.property.java.vm.version"].Value, after.VmVersion);
        Assert.Equal(j["java.property.java.vm.vendor"].Value, after.VmVendor);
        Assert.Equal(j["java.property.java.vm.name"].Value, after.VmName);
        Assert.Equal(j["java.property.java.version"].Value, after.JavaVersion);
        Assert.Equal(j.Long("sun.rt.createVmBeginTime"), after.VmStartTimeUnixMs);
        var startAge = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - after.VmStartTimeUnixMs;
        Assert.InRange(startAge, 0, 10 * 60 * 1000);

        double freq = after.TickFrequency;
        Assert.InRange(j.Long("sun.os.hrt.ticks") / freq, before.UptimeSeconds, after.UptimeSeconds);
        Assert.InRange(j.Long("sun.rt.safepoints"), before.Safepoints, after.Safepoints);
        Assert.InRange(j.Long("sun.rt.safepointTime") / freq, before.SafepointTimeSeconds, after.SafepointTimeSeconds);
        var loaded = j.Long("java.cls.loadedClasses") + j.Long("java.cls.sharedLoadedClasses");
        Assert.InRange(loaded, before.LoadedClasses, after.LoadedClasses);
        Assert.True(after.LoadedClasses > 400, "a JVM loads hundreds of classes, counted with the shared ones as jstat -class does");
        Assert.InRange(after.LiveThreads, 2, after.PeakThreads);
        Assert.InRange(after.DaemonThreads, 1, after.LiveThreads);

        // Collectors: the same names, in index order, and invocation counts between the two reads.
        var names = Enumerable.Range(0, 16).Select(i => $"sun.gc.collector.{i}.name").TakeWhile(j.ContainsKey).Select(n => j[n].Value).ToList();
        Assert.Equal(names, after.Collectors.Select(c => c.Name));
        Assert.All(after.Collectors, c => Assert.StartsWith(gcPrefix, c.Name, StringComparison.Ordinal));
        for (var i = 0; i < after.Collectors.Count; i++)
        {
            Assert.Equal(i, after.Collectors[i].Index);
            Assert.InRange(j.Long($"sun.gc.collector.{i}.invocations"), before.Collectors[i].Invocations, after.Collectors[i].Invocations);
            Assert.InRange(j.Long($"sun.gc.collector.{i}.time") / freq, before.Collectors[i].TimeSeconds, after.Collectors[i].TimeSeconds);
            // Entry and exit are times since JVM start (a collection may be running, so exit can precede entry);
            // sun.os.hrt.ticks is refreshed only every 50 ms, hence the slack.
            Assert.InRange(after.Collectors[i].LastEntrySeconds, 0, after.UptimeSeconds + 1);
            Assert.InRange(after.Collectors[i].LastExitSeconds, 0, after.UptimeSeconds + 1);
        }

        Assert.True(after.Collectors[0].Invocations > 0, "IdleService allocates, so young collections ran");
        Assert.NotEqual("", after.LastGcCause);
        Assert.NotEqual("", after.GcCause);

        // Spaces: the expected pools, each from the counters jcmd printed, with the same max capacity.
        Assert.Equal(["eden", "survivor-0", "survivor-1", "old", "metaspace", "compressed-class-space"], after.Spaces.Select(s => s.Pool));
        Assert.Equal(["heap", "heap", "heap", "heap", "non_heap", "non_heap"], after.Spaces.Select(s => s.Type));
        foreach (var space in after.Spaces)
        {
            var max = j.Long(space.CounterPrefix + ".maxCapacity");
            Assert.Equal(max > 0 ? max : -1, space.MaxBytes);
            Assert.True(space.UsedBytes >= 0 && space.CommittedBytes >= 0, space.Pool);
            Assert.True(space.MaxBytes == -1 || space.MaxBytes >= space.CommittedBytes, space.Pool);
        }

        var heapMax = after.Spaces.Where(s => s.Type == "heap" && s.Pool != "survivor-1").Sum(s => s.MaxBytes);
        // G1 adds 8 bytes to its space counters (so that an empty space never reads as 0): allow a little slack.
        Assert.True(after.Spaces.Single(s => s.Pool == "old").MaxBytes <= (128L * 1024 * 1024) + 4096, "old is bounded by -Xmx128m");
        Assert.True(heapMax > 0);
        Assert.True(after.Spaces.Single(s => s.Pool == "metaspace").UsedBytes > 0);

        // The steady-state read copies only non-constant values: a sample allocates a few KiB, not the file.
        HotSpotCounters.From(file.Read());
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++) HotSpotCounters.From(file.Read());
        var perSample = (GC.GetAllocatedBytesForCurrentThread() - allocated) / 100;
        Assert.InRange(perSample, 1, 6 * 1024);
    }

    private static PerfDataVariability Variability(PerfDataSnapshot s, string name) => s.First(c => c.Name == name).Variability;
}
