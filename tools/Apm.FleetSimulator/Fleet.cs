using System.Globalization;
using Apm.Protocol.V1;

namespace Apm.FleetSimulator;

/// <summary>
/// A deterministic fleet of <see cref="SimulatedJvm"/>s spread over hosts: a share leaking, a share restarting, the
/// rest healthy. <see cref="StepNext"/> advances the JVMs round robin, so at a rate of <c>Count / interval</c> samples
/// per second every JVM is sampled once per interval. Not thread-safe.
/// </summary>
public sealed class Fleet
{
    private readonly SimulatedJvm[] _jvms;
    private int _next;

    /// <param name="jvms">Number of JVMs (1 to 1,000,000).</param>
    /// <param name="leakingPercent">Share of leaking JVMs, 0 to 100.</param>
    /// <param name="restartingPercent">Share of restarting JVMs, 0 to 100 (with the leaking share at most 100).</param>
    /// <param name="jvmsPerHost">JVMs per simulated host name.</param>
    /// <param name="start">Start time of every JVM.</param>
    /// <param name="seed">Makes runs repeat.</param>
    /// <param name="profile">Growth and restart rates; null = defaults.</param>
    public Fleet(int jvms, double leakingPercent, double restartingPercent, int jvmsPerHost, DateTimeOffset start, int seed = 1, SimulationProfile? profile = null)
    {
        if (jvms is < 1 or > 1_000_000) throw new ArgumentOutOfRangeException(nameof(jvms), jvms, "a fleet has 1 to 1,000,000 JVMs");
        if (leakingPercent is < 0 or > 100 || double.IsNaN(leakingPercent)) throw new ArgumentOutOfRangeException(nameof(leakingPercent), leakingPercent, "a share is 0 to 100 percent");
        if (restartingPercent is < 0 or > 100 || double.IsNaN(restartingPercent)) throw new ArgumentOutOfRangeException(nameof(restartingPercent), restartingPercent, "a share is 0 to 100 percent");
        if (leakingPercent + restartingPercent > 100) throw new ArgumentException($"leaking ({leakingPercent}%) and restarting ({restartingPercent}%) JVMs add up to more than 100%");
        ArgumentOutOfRangeException.ThrowIfLessThan(jvmsPerHost, 1);
        profile ??= SimulationProfile.Default;
        if (profile.FinalizerEvery < 1) throw new ArgumentException("FinalizerEvery must be at least 1", nameof(profile));
        if (profile.RestartAfterSamples < 2) throw new ArgumentException("RestartAfterSamples must be at least 2", nameof(profile));
        var leaking = (int)Math.Round(jvms * leakingPercent / 100);
        var restarting = (int)Math.Round(jvms * restartingPercent / 100);
        _jvms = new SimulatedJvm[jvms];
        var special = 0;
        for (var i = 0; i < jvms; i++)
        {
            // Spread the kinds over the fleet (not the first N of one kind), so every host and partition sees all kinds:
            // pick leaking + restarting slots evenly, then split those slots evenly between the two kinds.
            var kind = JvmKind.Healthy;
            if (Slot(i, jvms, leaking + restarting))
            {
                kind = Slot(special, leaking + restarting, leaking) ? JvmKind.Leaking : JvmKind.Restarting;
                special++;
            }

            var host = string.Create(CultureInfo.InvariantCulture, $"sim-host-{i / jvmsPerHost:D4}");
            _jvms[i] = new SimulatedJvm(i, kind, host, start, unchecked((seed * 1_000_003) + i), profile);
        }
    }

    /// <summary>The JVMs, in fleet order.</summary>
    public IReadOnlyList<SimulatedJvm> Jvms => _jvms;

    /// <summary>Number of JVMs.</summary>
    public int Count => _jvms.Length;

    /// <summary>Advances the next JVM in round-robin order to <paramref name="now"/>; appends its messages; returns it.</summary>
    public SimulatedJvm StepNext(DateTimeOffset now, List<CollectorMessage> output)
    {
        var jvm = _jvms[_next];
        _next = (_next + 1) % _jvms.Length;
        jvm.Step(now, output);
        return jvm;
    }

    // Index i is among the first `count` of `total` slots spread evenly: true exactly `count` times over 0..total-1.
    private static bool Slot(int i, int total, int count) => (long)(i + 1) * count / total > (long)i * count / total;
}
