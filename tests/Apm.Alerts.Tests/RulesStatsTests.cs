using Apm.Alerts.Rules;

namespace Apm.Alerts.Tests;

public sealed class RulesStatsTests
{
    [Fact]
    public void Theil_Sen_slope_matches_the_hand_computed_median_of_pairwise_slopes()
    {
        // Pairwise slopes: 1, 1.5, 0.667, 24.75, 2, 0.5, 32.667, -1, 48, 97.
        // Sorted: -1, 0.5, 0.667, 1, [1.5, 2], 24.75, 32.667, 48, 97 → median (1.5 + 2) / 2 = 1.75.
        var slope = RobustStats.TheilSenSlope([(0, 1), (1, 2), (2, 4), (3, 3), (4, 100)]);

        Assert.Equal(1.75, slope!.Value, 10);
    }

    [Fact]
    public void Theil_Sen_ignores_pairs_with_equal_x_and_needs_two_distinct_x()
    {
        Assert.Null(RobustStats.TheilSenSlope([(1, 1), (1, 5)]));
        // Pairs with distinct x: (0,0)-(1,2) → 2 and (0,9)-(1,2) → -7; median -2.5.
        Assert.Equal(-2.5, RobustStats.TheilSenSlope([(0, 0), (0, 9), (1, 2)])!.Value, 10);
    }

    [Fact]
    public void Theil_Sen_on_a_long_series_is_thinned_but_still_exact_for_a_line()
    {
        var points = Enumerable.Range(0, 5000).Select(i => ((double)i, 3.0 * i + 7)).ToList();

        Assert.Equal(3.0, RobustStats.TheilSenSlope(points)!.Value, 10);
    }

    [Fact]
    public void Theil_Sen_by_selection_equals_the_median_of_all_pairwise_slopes_sorted()
    {
        // Seeded random series with ties, repeated x, steps and outliers, odd and even pair counts, up to the thinning cap.
        var random = new Random(20261203);
        for (var run = 0; run < 2000; run++)
        {
            var n = random.Next(2, RobustStats.MaxTheilSenPoints + 1);
            var points = new List<(double X, double Y)>(n);
            for (var i = 0; i < n; i++)
            {
                var x = random.Next(4) == 0 ? random.Next(0, 5) : i + (random.NextDouble() * 0.5);
                var y = random.Next(5) switch
                {
                    0 => random.Next(-3, 4),
                    1 => 1e9 * random.NextDouble(),
                    _ => (2.5 * x) + random.Next(-10, 10),
                };
                points.Add((x, y));
            }

            var slopes = new List<double>();
            for (var i = 0; i < n; i++)
            {
                for (var j = i + 1; j < n; j++)
                {
                    if (points[j].X != points[i].X) slopes.Add((points[j].Y - points[i].Y) / (points[j].X - points[i].X));
                }
            }

            slopes.Sort();
            double? expected = slopes.Count == 0 ? null
                : slopes.Count % 2 == 1 ? slopes[slopes.Count / 2]
                : (slopes[(slopes.Count / 2) - 1] + slopes[slopes.Count / 2]) / 2;
            var actual = RobustStats.TheilSenSlope(points);
            Assert.True(expected == actual, $"run {run}, {n} points: expected {expected}, got {actual}");
        }
    }

    [Fact]
    public void Theil_Sen_leaves_out_slopes_that_are_not_numbers_and_median_orders_NaN_first()
    {
        Assert.Equal(1.0, RobustStats.TheilSenSlope([(0, 0), (1, 1), (2, double.NaN), (3, 3)])!.Value, 10);
        Assert.Null(RobustStats.TheilSenSlope([(0, double.PositiveInfinity), (1, 1)]));
        Assert.Equal(2.0, RobustStats.Median([3, 1, 2]));
        Assert.True(double.IsNaN(RobustStats.Median([double.NaN, 5, double.NaN])));
    }

    [Fact]
    public void Correlation_is_one_for_proportional_series_and_null_for_a_constant_one()
    {
        Assert.Equal(1.0, RobustStats.Correlation([1, 2, 4], [2, 4, 8])!.Value, 10);
        Assert.Null(RobustStats.Correlation([1, 1, 1], [2, 4, 8]));
        Assert.Throws<ArgumentException>(() => RobustStats.Correlation([1, 2], [1]));
    }

    [Fact]
    public void Median_of_an_empty_list_is_rejected_with_a_reason()
    {
        var ex = Assert.Throws<ArgumentException>(() => RobustStats.Median([]));
        Assert.Contains("empty", ex.Message, StringComparison.Ordinal);
    }
}
