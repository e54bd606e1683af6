using Apm.Hprof.Graph;
using Apm.Hprof.Reader;

namespace Apm.Hprof.Tests;

public class FuzzTests
{
    private static void Parse(byte[] bytes)
    {
        using var g = HeapGraph.Build(HprofFile.FromBytes(bytes));
        var d = DominatorTree.Compute(g);
        _ = d.RetainedSizeByClass(g);
    }

    [Fact]
    public void Every_truncation_of_a_dump_fails_with_HprofFormatException()
    {
        var bytes = SyntheticDumpTests.BuildSample(8, true).Bytes;
        for (int len = 0; len < bytes.Length; len++)
        {
            var cut = bytes.AsSpan(0, len).ToArray();
            var e = Assert.Throws<HprofFormatException>(() => Parse(cut));
            Assert.Contains("offset", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Bit_flipped_dumps_either_parse_or_fail_with_HprofFormatException()
    {
        var rng = new Random(7);
        var original = SyntheticDumpTests.BuildSample(4, true).Bytes;
        int failures = 0;
        for (int i = 0; i < 3000; i++)
        {
            var b = (byte[])original.Clone();
            for (int k = rng.Next(1, 4); k > 0; k--) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
            try
            {
                Parse(b);
            }
            catch (HprofFormatException)
            {
                failures++;
            }
        }

        // Many flips land in ids or payload and still parse; many break the structure: both paths are exercised.
        Assert.InRange(failures, 300, 2999);
    }

    [Fact]
    public void Random_bytes_and_random_records_after_a_valid_header_fail_with_HprofFormatException()
    {
        var rng = new Random(11);
        var header = SyntheticDumpTests.BuildSample(8, true).Bytes.AsSpan(0, 31).ToArray();
        for (int i = 0; i < 3000; i++)
        {
            var body = new byte[rng.Next(0, 300)];
            rng.NextBytes(body);
            var bytes = i % 2 == 0 ? body : [.. header, .. body];
            Assert.Throws<HprofFormatException>(() => Parse(bytes));
        }
    }

    [Fact]
    public void Not_hprof_truncated_and_corrupt_are_told_apart()
    {
        Assert.Equal(HprofErrorKind.NotHprof, Assert.Throws<HprofFormatException>(() => Parse("hello world, not a heap dump"u8.ToArray())).Kind);
        var good = SyntheticDumpTests.BuildSample(8, true).Bytes;
        Assert.Equal(HprofErrorKind.Truncated, Assert.Throws<HprofFormatException>(() => Parse(good[..^5])).Kind);
        var bad = (byte[])good.Clone();
        bad[31] = 0x77; // first record tag
        var e = Assert.Throws<HprofFormatException>(() => Parse(bad));
        Assert.Equal(HprofErrorKind.Corrupt, e.Kind);
        Assert.Equal(31, e.Offset);
        Assert.Equal(0x77, e.Tag);
    }
}
