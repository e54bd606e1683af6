using Apm.Alerts.Rules;

namespace Apm.Alerts.Tests;

public sealed class RulesFinalizerBacklogTests
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(15);
    private static readonly (string, long)[] Top = [("com.acme.SlowResource", 900), ("java.util.zip.Inflater", 40)];

    [Fact]
    public void A_steadily_rising_noisy_queue_breaches_and_names_the_top_classes()
    {
        var noise = RulesTestData.Noise(1, 20);
        var state = RulesTestData.Finalizer(40, Step, i => 200 + (i * 30) + noise(i), Top);

        var result = new FinalizerBacklogRule().Evaluate(state);

        Assert.True(result.Breached, result.Summary);
        Assert.Contains("com.acme.SlowResource", result.Summary, StringComparison.Ordinal);
        Assert.Contains("com.acme.SlowResource (900)", result.Evidence["topClasses"], StringComparison.Ordinal);
        Assert.InRange(double.Parse(result.Evidence["slopePerSecond"], System.Globalization.CultureInfo.InvariantCulture), 1.8, 2.2);
        Assert.NotEmpty(result.SuggestedFixes);
    }

    [Fact]
    public void A_flat_noisy_queue_does_not_breach()
    {
        var noise = RulesTestData.Noise(2, 40);
        var state = RulesTestData.Finalizer(40, Step, i => 500 + noise(i), Top);

        Assert.False(new FinalizerBacklogRule().Evaluate(state).Breached);
    }

    [Fact]
    public void A_single_spike_does_not_breach()
    {
        var noise = RulesTestData.Noise(3, 20);
        var state = RulesTestData.Finalizer(40, Step, i => i == 30 ? 50_000 : 500 + noise(i), Top);

        Assert.False(new FinalizerBacklogRule().Evaluate(state).Breached);
    }

    [Fact]
    public void One_jump_that_stays_up_is_not_a_rising_trend()
    {
        var noise = RulesTestData.Noise(4, 20);
        var state = RulesTestData.Finalizer(40, Step, i => (i < 20 ? 500 : 5_000) + noise(i), Top);

        var result = new FinalizerBacklogRule().Evaluate(state);

        Assert.False(result.Breached, result.Summary);
    }

    [Fact]
    public void A_queue_that_rises_then_drains_does_not_breach()
    {
        var state = RulesTestData.Finalizer(40, Step, i => i < 34 ? 200 + (i * 30) : new long[] { 800, 400, 100, 5, 0, 0 }[i - 34], Top);

        Assert.False(new FinalizerBacklogRule().Evaluate(state).Breached);
    }

    [Fact]
    public void A_rising_queue_that_touches_zero_late_in_the_window_counts_as_draining()
    {
        var state = RulesTestData.Finalizer(40, Step, i => i == 36 ? 0 : 200 + (i * 30), Top);

        var result = new FinalizerBacklogRule().Evaluate(state);

        Assert.False(result.Breached);
        Assert.Contains("drained", result.Summary, StringComparison.Ordinal);
        Assert.Equal("0", result.Evidence["tailMinimum"]);
    }

    [Fact]
    public void Too_few_samples_are_not_judged()
    {
        var state = RulesTestData.Finalizer(4, Step, i => 1000 * i, Top);

        var result = new FinalizerBacklogRule().Evaluate(state);

        Assert.False(result.Breached);
        Assert.Contains("Not enough", result.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public void Samples_outside_the_window_are_ignored()
    {
        // 80 samples over 20 minutes: rising in the first 10, flat in the 10-minute window.
        var state = RulesTestData.Finalizer(80, Step, i => i < 40 ? i * 100 : 4_000, Top);

        Assert.False(new FinalizerBacklogRule().Evaluate(state).Breached);
    }

    [Fact]
    public void Invalid_options_are_rejected_with_the_option_name()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new FinalizerBacklogRule(new FinalizerBacklogOptions { MinSamples = 1 }));
        Assert.Equal("MinSamples", ex.ParamName);
    }
}
