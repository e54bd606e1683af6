using Apm.Aggregator;
using Apm.FleetSimulator;
using Apm.Influx;
using Apm.Protocol.V1;

namespace Apm.Deployment.Tests;

public sealed class FleetGeneratorTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 1, 12, 0, 0, TimeSpan.Zero);

    private static List<CollectorMessage> Run(SimulatedJvm jvm, int samples, TimeSpan interval)
    {
        var output = new List<CollectorMessage>();
        for (var i = 1; i <= samples; i++) jvm.Step(Start + (interval * i), output);
        return output;
    }

    [Fact]
    public void Sequence_numbers_start_at_one_and_rise_by_one_per_sample()
    {
        var jvm = new SimulatedJvm(3, JvmKind.Healthy, "h1", Start, seed: 7);
        var samples = Run(jvm, 50, TimeSpan.FromSeconds(5)).Where(m => m.BodyCase == CollectorMessage.BodyOneofCase.Sample).Select(m => m.Sample).ToList();
        Assert.Equal(Enumerable.Range(1, 50).Select(i => (ulong)i), samples.Select(s => s.Sequence));
        Assert.All(samples, s => Assert.Equal(jvm.JvmId, s.Jvm.JvmId));
        Assert.True(samples.Zip(samples.Skip(1)).All(p => p.Second.TimeUnixNanos > p.First.TimeUnixNanos), "sample times must rise");
    }

    [Fact]
    public void A_restart_announces_the_old_id_as_gone_then_samples_under_a_new_id_with_sequence_and_uptime_reset()
    {
        var profile = new SimulationProfile { RestartAfterSamples = 10 };
        var jvm = new SimulatedJvm(0, JvmKind.Restarting, "h1", Start, seed: 1, profile);
        var firstId = jvm.JvmId;
        var messages = Run(jvm, 40, TimeSpan.FromSeconds(5));

        Assert.True(jvm.Restarts >= 2, $"expected at least 2 restarts in 40 samples with ~10 per life, got {jvm.Restarts}");
        var gone = messages.Where(m => m.BodyCase == CollectorMessage.BodyOneofCase.Status).Select(m => m.Status).ToList();
        Assert.Equal(jvm.Restarts, gone.Count);
        Assert.All(gone, s => Assert.Equal(JvmStatus.Types.State.Gone, s.State));
        Assert.Equal(firstId, gone[0].Jvm.JvmId);

        var samples = messages.Where(m => m.BodyCase == CollectorMessage.BodyOneofCase.Sample).Select(m => m.Sample).ToList();
        var ids = samples.Select(s => s.Jvm.JvmId).Distinct().ToList();
        Assert.Equal(jvm.Restarts + 1, ids.Count);
        // Every incarnation numbers its samples from 1, and its uptime starts near 0 again.
        foreach (var id in ids)
        {
            var life = samples.Where(s => s.Jvm.JvmId == id).ToList();
            Assert.Equal(Enumerable.Range(1, life.Count).Select(i => (ulong)i), life.Select(s => s.Sequence));
            if (id != firstId) Assert.InRange(life[0].UptimeSeconds, 0, 5.001);
        }

        // The message right after each Gone status is the new incarnation's first sample.
        for (var i = 0; i < messages.Count - 1; i++)
        {
            if (messages[i].BodyCase != CollectorMessage.BodyOneofCase.Status) continue;
            Assert.Equal(1UL, messages[i + 1].Sample.Sequence);
            Assert.NotEqual(messages[i].Status.Jvm.JvmId, messages[i + 1].Sample.Jvm.JvmId);
        }
    }

    [Fact]
    public void A_leaking_jvms_old_generation_after_gc_and_finalizer_counts_climb_while_a_healthy_ones_do_not()
    {
        var leaking = new SimulatedJvm(1, JvmKind.Leaking, "h1", Start, seed: 2);
        var healthy = new SimulatedJvm(2, JvmKind.Healthy, "h1", Start, seed: 2);
        var leak = Run(leaking, 360, TimeSpan.FromSeconds(5)); // half an hour
        var ok = Run(healthy, 360, TimeSpan.FromSeconds(5));

        static long Old(JvmSample s) => s.Spaces.Single(x => x.Pool == "old").UsedBytes;
        var leakSamples = leak.Where(m => m.Sample != null).Select(m => m.Sample).ToList();
        var okSamples = ok.Where(m => m.Sample != null).Select(m => m.Sample).ToList();
        // Compare the lowest old generation (what survives collections) of the first and last ten minutes.
        var leakEarly = leakSamples.Take(120).Min(Old);
        var leakLate = leakSamples.TakeLast(120).Min(Old);
        var okEarly = okSamples.Take(120).Min(Old);
        var okLate = okSamples.TakeLast(120).Min(Old);
        Assert.True(leakLate > leakEarly + (200L << 20), $"leaking old gen floor {leakEarly >> 20} MiB -> {leakLate >> 20} MiB");
        Assert.True(okLate <= okEarly + (32L << 20), $"healthy old gen floor {okEarly >> 20} MiB -> {okLate >> 20} MiB");

        var pending = leak.Where(m => m.Finalizer != null).Select(m => m.Finalizer.PendingTotal).ToList();
        Assert.Equal(120, pending.Count); // one reading every 3 samples
        Assert.True(pending.Zip(pending.Skip(1)).All(p => p.Second >= p.First), "the finalization queue of a leaking JVM never shrinks");
        Assert.True(pending[^1] > 50_000, $"backlog after 30 min: {pending[^1]}");
        Assert.All(ok.Where(m => m.Finalizer != null), m => Assert.InRange(m.Finalizer.PendingTotal, 0, 3));

        var finalizers = leak.Where(m => m.Histogram != null).Select(m => m.Histogram.Rows.Single(r => r.ClassName == "java.lang.ref.Finalizer").Instances).ToList();
        Assert.True(finalizers[^1] > finalizers[0] * 10, $"java.lang.ref.Finalizer instances {finalizers[0]} -> {finalizers[^1]}");
        Assert.DoesNotContain(ok, m => m.Histogram != null);

        var fullGcs = leakSamples[^1].Collectors.Single(c => c.Index == 1).Invocations;
        Assert.True(fullGcs > okSamples[^1].Collectors.Single(c => c.Index == 1).Invocations, "a leaking JVM needs more full collections");
    }

    [Fact]
    public void Every_simulated_message_passes_the_aggregators_validation_and_yields_points()
    {
        var fleet = new Fleet(200, leakingPercent: 10, restartingPercent: 10, jvmsPerHost: 20, Start, seed: 3, new SimulationProfile { RestartAfterSamples = 4 });
        var output = new List<CollectorMessage>();
        for (var i = 0; i < 2_000; i++) fleet.StepNext(Start + TimeSpan.FromMilliseconds(25 * i), output);

        var lines = new LineProtocolBuilder();
        var points = 0;
        foreach (var m in output)
        {
            Assert.Null(SamplePoints.Validate(m));
            points += SamplePoints.Append(lines, m, null);
        }

        Assert.Equal(2_000, output.Count(m => m.BodyCase == CollectorMessage.BodyOneofCase.Sample));
        Assert.True(points > 2_000 * 10, $"points per sample too few: {points}");
        Assert.Contains(output, m => m.BodyCase == CollectorMessage.BodyOneofCase.Status);
        Assert.Contains(output, m => m.BodyCase == CollectorMessage.BodyOneofCase.Histogram);
    }

    [Fact]
    public void A_fleet_has_the_asked_shares_spread_over_hosts_and_visits_every_jvm_round_robin()
    {
        var fleet = new Fleet(1000, leakingPercent: 5, restartingPercent: 7, jvmsPerHost: 25, Start);
        Assert.Equal(50, fleet.Jvms.Count(j => j.Kind == JvmKind.Leaking));
        Assert.Equal(70, fleet.Jvms.Count(j => j.Kind == JvmKind.Restarting));
        Assert.Equal(40, fleet.Jvms.Select(j => j.Identity.Host).Distinct().Count());
        Assert.Equal(1000, fleet.Jvms.Select(j => j.JvmId).Distinct().Count());
        // Leaking JVMs are spread out, not bunched at the start.
        Assert.Contains(fleet.Jvms.Skip(900), j => j.Kind == JvmKind.Leaking);

        var output = new List<CollectorMessage>();
        var visited = Enumerable.Range(0, 2000).Select(i => fleet.StepNext(Start.AddSeconds(1), output).Index).ToList();
        Assert.Equal(Enumerable.Range(0, 1000).Concat(Enumerable.Range(0, 1000)), visited);
        Assert.All(fleet.Jvms, j => Assert.Equal(2UL, j.Sequence));
    }

    [Theory]
    [InlineData(0, 5, 5)]
    [InlineData(10, 60, 50)]
    [InlineData(10, -1, 5)]
    [InlineData(10, 5, double.NaN)]
    public void Bad_fleet_settings_are_refused_with_a_reason(int jvms, double leaking, double restarting)
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => new Fleet(jvms, leaking, restarting, 10, Start));
        Assert.False(string.IsNullOrWhiteSpace(ex.Message));
    }

    [Fact]
    public void Command_line_values_are_parsed_and_bad_ones_name_the_option()
    {
        var a = SimulatorArguments.Parse(["--jvms", "3000", "--interval", "2.5", "--bootstrap", "k1:9092,k2:9092"]);
        Assert.Equal(3000, a.Jvms);
        Assert.Equal(1200, a.SamplesPerSecond, 6);
        Assert.Equal("k1:9092,k2:9092", a.BootstrapServers);
        Assert.Contains("--jvms", Assert.Throws<ArgumentException>(() => SimulatorArguments.Parse(["--jvms", "lots"])).Message, StringComparison.Ordinal);
        Assert.Contains("--interval", Assert.Throws<ArgumentException>(() => SimulatorArguments.Parse(["--interval"])).Message, StringComparison.Ordinal);
        Assert.Contains("--frobnicate", Assert.Throws<ArgumentException>(() => SimulatorArguments.Parse(["--frobnicate", "1"])).Message, StringComparison.Ordinal);
    }
}
