using Apm.Hprof.Analysis;

namespace Apm.Hprof.Tests;

public class RankingTests
{
    [Fact]
    public void Ranking_gives_the_order_of_LINQ_descending_sorts_with_ties_in_input_order_on_seeded_random_inputs()
    {
        var random = new Random(20261203);
        for (int round = 0; round < 500; round++)
        {
            int n = random.Next(0, round < 400 ? 60 : 3000);
            // Few distinct keys, so that ties are common; items are distinct, in no order.
            var items = Enumerable.Range(0, n).Select(i => (i * 7919) % 100_003).ToArray();
            var key = items.ToDictionary(i => i, _ => (long)random.Next(-3, 6));
            var then = items.ToDictionary(i => i, _ => (long)random.Next(0, 3));
            int take = random.Next(0, 3) switch { 0 => int.MaxValue, 1 => random.Next(0, 40), _ => random.Next(0, n + 2) };

            var expected = items.OrderByDescending(i => key[i]).Take(take).ToArray();
            Assert.Equal(expected, Ranking.Descending(items, i => key[i], take: take));
            var expectedTwo = items.OrderByDescending(i => key[i]).ThenByDescending(i => then[i]).Take(take).ToArray();
            Assert.Equal(expectedTwo, Ranking.Descending(items, i => key[i], i => then[i], take));
        }
    }
}
