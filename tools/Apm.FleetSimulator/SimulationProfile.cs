namespace Apm.FleetSimulator;

/// <summary>Rates that shape the simulated JVMs; the defaults make a leak visible to the rules within minutes.</summary>
public sealed record SimulationProfile
{
    /// <summary>The profile used when none is given.</summary>
    public static SimulationProfile Default { get; } = new();

    /// <summary>Bytes allocated per second (drives young collections and promotion).</summary>
    public double AllocationBytesPerSecond { get; init; } = 64L << 20;

    /// <summary>Bytes a leaking JVM keeps in the old generation per second.</summary>
    public double LeakBytesPerSecond { get; init; } = 512L << 10;

    /// <summary>Finalizable objects a leaking JVM registers per second (java.lang.ref.Finalizer count growth).</summary>
    public double LeakObjectsPerSecond { get; init; } = 200;

    /// <summary>Growth of a leaking JVM's finalization queue per second.</summary>
    public double FinalizerBacklogPerSecond { get; init; } = 50;

    /// <summary>A finalizer reading every this many samples (15 s finalizer interval / 5 s sample interval).</summary>
    public int FinalizerEvery { get; init; } = 3;

    /// <summary>A restarting JVM restarts after about this many samples (uniformly 0.5x to 1.5x).</summary>
    public int RestartAfterSamples { get; init; } = 60;
}
