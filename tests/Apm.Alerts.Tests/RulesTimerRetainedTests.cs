using Apm.Alerts.Rules;

namespace Apm.Alerts.Tests;

public sealed class RulesTimerRetainedTests
{
    // Irregular growth per 10-minute interval, so the deltas carry a pattern to correlate.
    private static readonly long[] Finalizer = [10_000, 10_500, 11_200, 11_500, 12_150, 12_600];

    [Fact]
    public void CancelTimer_pattern_with_unusual_class_names_breaches_and_names_both_classes()
    {
        var state = RulesTestData.Histograms(RulesTestData.HistogramSeries(
            Finalizer,
            ("com.acme.db.Stmt", [9_000, 9_490, 10_185, 10_480, 11_120, 11_565]),
            ("com.acme.db.Stmt$Cancel", [8_950, 9_452, 10_148, 10_451, 11_097, 11_551]),
            ("java.lang.String", [50_000, 48_000, 53_000, 49_000, 52_000, 51_000]),
            ("com.acme.Cache", [100, 100, 100, 100, 100, 100])));

        var result = new TimerRetainedFinalizableRule().Evaluate(state);

        Assert.True(result.Breached, result.Summary);
        Assert.Equal("com.acme.db.Stmt", result.Evidence["finalizableClass"]);
        Assert.Equal("com.acme.db.Stmt$Cancel", result.Evidence["timerTaskClass"]);
        Assert.Contains("com.acme.db.Stmt ", result.Summary, StringComparison.Ordinal);
        Assert.Contains("com.acme.db.Stmt$Cancel", result.Summary, StringComparison.Ordinal);
        Assert.Contains("until their scheduled time", result.Summary, StringComparison.Ordinal);
        Assert.Equal("10000, 10500, 11200, 11500, 12150, 12600", result.Evidence["java.lang.ref.Finalizer"]);
        Assert.Equal("9000, 9490, 10185, 10480, 11120, 11565", result.Evidence["com.acme.db.Stmt"]);
        Assert.Contains(result.SuggestedFixes, f => f.Contains("Upgrade", StringComparison.Ordinal));
        Assert.Contains(result.SuggestedFixes, f => f.Contains("query timeout", StringComparison.Ordinal));
        Assert.Contains(result.SuggestedFixes, f => f.Contains("Timer.purge()", StringComparison.Ordinal));
    }

    [Fact]
    public void PostgreSQL_class_names_are_recognised_the_same_way()
    {
        var state = RulesTestData.Histograms(RulesTestData.HistogramSeries(
            Finalizer,
            ("org.postgresql.jdbc.PgPreparedStatement", [9_500, 10_000, 10_700, 11_000, 11_650, 12_100]),
            ("org.postgresql.jdbc.PgStatement$StatementCancelTimerTask", [9_400, 9_900, 10_600, 10_900, 11_550, 12_000])));

        var result = new TimerRetainedFinalizableRule().Evaluate(state);

        Assert.True(result.Breached, result.Summary);
        Assert.Equal("org.postgresql.jdbc.PgPreparedStatement", result.Evidence["finalizableClass"]);
        Assert.Equal("org.postgresql.jdbc.PgStatement$StatementCancelTimerTask", result.Evidence["timerTaskClass"]);
    }

    [Fact]
    public void Steady_growth_with_constant_steps_still_matches()
    {
        var state = RulesTestData.Histograms(RulesTestData.HistogramSeries(
            [1_000, 1_500, 2_000],
            ("x.Res", [900, 1_400, 1_900]),
            ("x.ReaperTask", [10, 510, 1_010])));

        var result = new TimerRetainedFinalizableRule().Evaluate(state);

        Assert.True(result.Breached, result.Summary);
        Assert.Equal("steady", result.Evidence["finalizableDeltaCorrelation"]);
    }

    [Fact]
    public void A_healthy_service_with_a_flat_finalizer_count_does_not_breach()
    {
        var state = RulesTestData.Histograms(RulesTestData.HistogramSeries(
            [10_000, 10_020, 9_990, 10_010, 10_005, 9_995],
            ("com.acme.db.Stmt", [9_000, 9_020, 8_990, 9_010, 9_005, 8_995]),
            ("com.acme.db.Stmt$Cancel", [8_000, 8_020, 7_990, 8_010, 8_005, 7_995])));

        var result = new TimerRetainedFinalizableRule().Evaluate(state);

        Assert.False(result.Breached);
        Assert.Contains("grew by", result.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public void Finalizable_growth_without_a_timer_task_does_not_breach()
    {
        var state = RulesTestData.Histograms(RulesTestData.HistogramSeries(
            Finalizer,
            ("com.acme.io.Resource", [9_000, 9_500, 10_200, 10_500, 11_150, 11_600]),
            ("com.acme.Other", [10, 20, 30, 40, 50, 60])));

        var result = new TimerRetainedFinalizableRule().Evaluate(state);

        Assert.False(result.Breached);
        Assert.Equal("com.acme.io.Resource", result.Evidence["inStepClasses"]);
    }

    [Fact]
    public void A_timer_task_that_grows_out_of_step_does_not_breach()
    {
        var state = RulesTestData.Histograms(RulesTestData.HistogramSeries(
            Finalizer,
            ("com.acme.db.Stmt", [9_000, 9_500, 10_200, 10_500, 11_150, 11_600]),
            // Same total growth, but the steps run against Finalizer's (+800, +100, +900, +100, +700).
            ("com.acme.jobs.FlushTask", [1_000, 1_800, 1_900, 2_800, 2_900, 3_600])));

        var result = new TimerRetainedFinalizableRule().Evaluate(state);

        Assert.False(result.Breached, result.Summary);
    }

    [Fact]
    public void Two_histograms_are_not_enough()
    {
        var state = RulesTestData.Histograms(RulesTestData.HistogramSeries(
            [1_000, 5_000],
            ("a.B", [1_000, 5_000]),
            ("a.B$1", [1_000, 5_000])));

        var result = new TimerRetainedFinalizableRule().Evaluate(state);

        Assert.False(result.Breached);
        Assert.Contains("Not enough", result.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public void A_class_missing_from_one_histogram_is_not_treated_as_zero()
    {
        var histograms = RulesTestData.HistogramSeries(
            Finalizer,
            ("com.acme.db.Stmt", [9_000, 9_490, 10_185, 10_480, 11_120, 11_565]),
            ("com.acme.db.Stmt$Cancel", [8_950, 9_452, 10_148, 10_451, 11_097, 11_551]));
        histograms[2] = histograms[2] with { Rows = histograms[2].Rows.Where(r => r.Class != "com.acme.db.Stmt$Cancel").ToList() };

        var result = new TimerRetainedFinalizableRule().Evaluate(RulesTestData.Histograms(histograms));

        Assert.False(result.Breached);
    }

    // Each TimerTask holds a java.lang.Object as its lock, so Object grows exactly as the tasks (and Finalizer) do.
    private static readonly long[] ObjectOneToOne = [2_000, 2_500, 3_200, 3_500, 4_150, 4_600];

    private static List<HistogramObservation> Marked(List<HistogramObservation> histograms, params (string Class, HistogramMarks Marks)[] marks) =>
        histograms.Select(h => h with { Marks = marks.ToDictionary(m => m.Class, m => m.Marks, StringComparer.Ordinal) }).ToList();

    [Fact]
    public void Java_lang_Object_growing_one_to_one_with_Finalizer_is_never_named_as_the_finalizable_class()
    {
        // Object's growth ratio is exactly 1 (the statement's is not) and the task is task-like by name: before the fix Object won.
        var state = RulesTestData.Histograms(RulesTestData.HistogramSeries(
            Finalizer,
            ("java.lang.Object", ObjectOneToOne),
            ("org.h2.jdbc.JdbcStatement", [9_000, 9_490, 10_185, 10_480, 11_120, 11_565]),
            ("org.h2.util.CancelTimerTask", [8_950, 9_452, 10_148, 10_451, 11_097, 11_551])));

        var result = new TimerRetainedFinalizableRule().Evaluate(state);

        Assert.True(result.Breached, result.Summary);
        Assert.Equal("org.h2.jdbc.JdbcStatement", result.Evidence["finalizableClass"]);
        Assert.Equal("org.h2.util.CancelTimerTask", result.Evidence["timerTaskClass"]);
        Assert.DoesNotContain("java.lang.Object", result.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public void Object_and_a_timer_task_growing_in_step_without_a_finalizable_class_do_not_breach()
    {
        var state = RulesTestData.Histograms(RulesTestData.HistogramSeries(
            Finalizer,
            ("java.lang.Object", ObjectOneToOne),
            ("com.acme.jobs.RefreshTask", [100, 600, 1_300, 1_600, 2_250, 2_700])));

        var result = new TimerRetainedFinalizableRule().Evaluate(state);

        Assert.False(result.Breached, result.Summary);
        Assert.False(result.Evidence.ContainsKey("finalizableClass"));
    }

    [Fact]
    public void A_class_with_more_instances_than_there_are_Finalizers_is_not_the_finalizable_class()
    {
        // com.acme.Lock grows 1:1 (ratio exactly 1) but always has more instances than Finalizer: not finalizable.
        var state = RulesTestData.Histograms(RulesTestData.HistogramSeries(
            Finalizer,
            ("com.acme.Lock", [60_000, 60_500, 61_200, 61_500, 62_150, 62_600]),
            ("com.acme.db.Stmt", [9_000, 9_490, 10_185, 10_480, 11_120, 11_565]),
            ("com.acme.db.CancelTask", [8_950, 9_452, 10_148, 10_451, 11_097, 11_551])));

        var result = new TimerRetainedFinalizableRule().Evaluate(state);

        Assert.True(result.Breached, result.Summary);
        Assert.Equal("com.acme.db.Stmt", result.Evidence["finalizableClass"]);
    }

    [Fact]
    public void The_collectors_timer_task_mark_finds_a_task_class_no_name_rule_would_and_overrides_names()
    {
        // "Canceller" neither ends with Task nor is nested in the statement class; "FlushTask" looks like a task by name
        // and grows in step too, but the collector's class hierarchy says only Canceller is a java.util.TimerTask.
        var histograms = RulesTestData.HistogramSeries(
            Finalizer,
            ("com.acme.db.Stmt", [9_000, 9_490, 10_185, 10_480, 11_120, 11_565]),
            ("com.acme.db.Canceller", [8_950, 9_452, 10_148, 10_451, 11_097, 11_551]),
            ("com.acme.jobs.FlushTask", [3_000, 3_520, 4_240, 4_550, 5_220, 5_680]));

        var unmarked = new TimerRetainedFinalizableRule().Evaluate(RulesTestData.Histograms(histograms));
        Assert.Equal("com.acme.jobs.FlushTask", unmarked.Evidence["timerTaskClass"]); // the name heuristics' choice

        var marked = new TimerRetainedFinalizableRule().Evaluate(RulesTestData.Histograms(Marked(histograms, ("com.acme.db.Canceller", HistogramMarks.TimerTask))));

        Assert.True(marked.Breached, marked.Summary);
        Assert.Equal("com.acme.db.Stmt", marked.Evidence["finalizableClass"]);
        Assert.Equal("com.acme.db.Canceller", marked.Evidence["timerTaskClass"]);
    }

    [Fact]
    public void A_class_the_collector_saw_in_the_finalization_queue_is_preferred_as_the_finalizable_class()
    {
        // com.acme.Wrapper grows exactly 1:1, com.acme.db.Stmt a little less, but only Stmt was seen in the queue.
        var histograms = RulesTestData.HistogramSeries(
            Finalizer,
            ("com.acme.Wrapper", [5_000, 5_500, 6_200, 6_500, 7_150, 7_600]),
            ("com.acme.db.Stmt", [9_000, 9_490, 10_185, 10_480, 11_120, 11_565]),
            ("com.acme.db.CancelTask", [8_950, 9_452, 10_148, 10_451, 11_097, 11_551]));
        Assert.Equal("com.acme.Wrapper", new TimerRetainedFinalizableRule().Evaluate(RulesTestData.Histograms(histograms)).Evidence["finalizableClass"]);

        var result = new TimerRetainedFinalizableRule().Evaluate(RulesTestData.Histograms(Marked(
            histograms,
            ("com.acme.db.Stmt", HistogramMarks.FinalizerQueue | HistogramMarks.FinalizerStep),
            ("com.acme.Wrapper", HistogramMarks.FinalizerStep),
            ("com.acme.db.CancelTask", HistogramMarks.TimerTask))));

        Assert.True(result.Breached, result.Summary);
        Assert.Equal("com.acme.db.Stmt", result.Evidence["finalizableClass"]);
        Assert.Equal("com.acme.db.CancelTask", result.Evidence["timerTaskClass"]);
    }

    [Fact]
    public void Kept_because_lists_are_read_into_marks_and_unknown_reasons_are_ignored()
    {
        Assert.Equal(HistogramMarks.TimerTask | HistogramMarks.FinalizerStep, HistogramMarkParser.Parse("top-bytes, timer-task,finalizer-step,future-reason"));
        Assert.Equal(HistogramMarks.FinalizerQueue, HistogramMarkParser.Parse("finalizer-queue"));
        Assert.Equal(HistogramMarks.None, HistogramMarkParser.Parse(""));
        Assert.Equal(HistogramMarks.None, HistogramMarkParser.Parse(null));
        Assert.Equal(HistogramMarks.None, HistogramMarkParser.Parse(",,watch"));
    }
}
