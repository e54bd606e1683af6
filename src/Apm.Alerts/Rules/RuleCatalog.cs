namespace Apm.Alerts.Rules;

/// <summary>What a rule is for, in words for the people on call (the dashboard's alerts page, e-mails).</summary>
/// <param name="Id">The rule id (<see cref="RuleIds"/>).</param>
/// <param name="Title">A short name.</param>
/// <param name="Detects">What the rule detects and why it matters.</param>
/// <param name="WhatToDo">The first things to check or change.</param>
public sealed record RuleDescription(string Id, string Title, string Detects, string WhatToDo);

/// <summary>The documentation of every rule, condensed from docs/rules.md (which has the thresholds and evidence keys).</summary>
public static class RuleCatalog
{
    /// <summary>One description per rule id, in the order the rules are usually investigated.</summary>
    public static IReadOnlyList<RuleDescription> All { get; } =
    [
        new(
            RuleIds.TimerRetainedFinalizable,
            "Timer-retained finalizable objects",
            "Across class histograms, java.lang.ref.Finalizer grows in step with a class that overrides finalize() and with a "
            + "TimerTask subclass: a library (typically a JDBC driver's query-cancel Timer) schedules one task per object and "
            + "cancels it on close, but a cancelled TimerTask stays in the timer's queue until its scheduled time, keeping the "
            + "object and its Finalizer alive. They pile up in the old generation and force full collections.",
            "Upgrade the driver to a version that purges cancelled tasks; use a shorter query timeout so cancelled tasks expire "
            + "sooner; or call java.util.Timer.purge() periodically. A heap dump's triage report shows the path from the timer thread."),
        new(
            RuleIds.FinalizerBacklog,
            "Finalizer backlog growth",
            "The finalization queue keeps growing and does not drain: objects become unreachable faster than the single "
            + "Finalizer thread runs their finalize(), so everything they reference stays in memory.",
            "Take a thread dump and look at the \"Finalizer\" thread (blocked on a lock, slow I/O); replace finalize() in the "
            + "named classes by explicit close() (try-with-resources) or java.lang.ref.Cleaner."),
        new(
            RuleIds.OldGenGrowth,
            "Old-generation live set growth",
            "The old generation's occupancy after collections (the floor of the sawtooth) keeps rising: something retains "
            + "more and more objects, and the JVM will end in long full collections or OutOfMemoryError.",
            "Compare two class histograms or heap dumps some time apart; check the finalizer rules for the same JVM."),
        new(
            RuleIds.GcOverhead,
            "GC overhead",
            "The share of wall time the JVM spends collecting is above the threshold over the window: the application "
            + "gets less of the CPU and pauses grow.",
            "Look at old-generation growth first (a growing live set is the usual cause); if the live set is stable, give "
            + "the heap more room or tune the collector."),
    ];

    /// <summary>The description of <paramref name="ruleId"/>, or null for an unknown id.</summary>
    public static RuleDescription? Find(string ruleId) =>
        All.FirstOrDefault(r => string.Equals(r.Id, ruleId, StringComparison.Ordinal));
}
