namespace Apm.FleetSimulator;

/// <summary>How a simulated JVM behaves over time.</summary>
public enum JvmKind
{
    /// <summary>Old generation saw-tooths around a steady level; the finalization queue stays near empty.</summary>
    Healthy,

    /// <summary>The seed leak: old generation after GC and the finalizer counts climb without bound.</summary>
    Leaking,

    /// <summary>Healthy, but restarts every few minutes: a new JVM id (new pid and start time), uptime and sequence reset.</summary>
    Restarting,
}
