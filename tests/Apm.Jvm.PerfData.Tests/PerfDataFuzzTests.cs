using System.Buffers.Binary;
using Apm.Jvm.PerfData;
using Apm.Testing;

namespace Apm.Jvm.PerfData.Tests;

/// <summary>Mutated copies of a real JVM's hsperfdata file: only PerfDataFormatException, no hang, no leak.</summary>
public class PerfDataFuzzTests
{
    private const int Seed = 20261121;
    private const int Mutations = 6000;
    private const int EveryNthThroughAFile = 20;

    [Fact]
    public async Task Thousands_of_mutated_real_files_fail_only_with_a_format_exception_and_leak_no_handle_or_mapping()
    {
        var original = await RealFileAsync();
        var entryOffsets = EntryOffsets(original);
        Assert.True(entryOffsets.Count > 100, "a real file has a couple of hundred entries");
        var rng = new Random(Seed);
        using var dir = new TempDir();
        int parsed = 0, rejected = 0, typed = 0;
        var reasons = new HashSet<string>(StringComparer.Ordinal);

        for (var i = 0; i < Mutations; i++)
        {
            var mutated = Mutate(original, entryOffsets, rng);
            try
            {
                var snapshot = PerfDataSnapshot.Parse(mutated);
                parsed++;
                if (Exercise(snapshot)) typed++;
            }
            catch (PerfDataFormatException ex)
            {
                rejected++;
                reasons.Add(ex.Message.Split(' ')[0]);
            }
            catch (Exception ex)
            {
                throw new Xunit.Sdk.XunitException($"mutation {i} (seed {Seed}) threw {ex}");
            }

            if (i % EveryNthThroughAFile == 0) ThroughAMappedFile(dir, i, mutated);
        }

        // Both paths were exercised: many mutations are harmless (a changed value), many are caught.
        Assert.True(parsed > Mutations / 10, $"only {parsed} mutations parsed");
        Assert.True(rejected > Mutations / 10, $"only {rejected} mutations rejected");
        Assert.True(typed > Mutations / 20, $"only {typed} typed views built");
        Assert.True(reasons.Count >= 5, "reasons seen: " + string.Join(", ", reasons));
        Assert.Equal(0, ProcessResources.OpenFilesUnder(dir.Path));
        Assert.Equal(0, ProcessResources.MappingsUnder(dir.Path));
    }

    [Fact]
    public async Task Every_truncation_of_a_real_file_is_refused_or_parsed_but_never_crashes()
    {
        var original = await RealFileAsync();
        var used = BinaryPrimitives.ReadInt32LittleEndian(original.AsSpan(8));
        var refusedBelowUsed = 0;
        for (var length = 0; length <= original.Length; length += length < used + 64 ? 1 : 97)
        {
            try
            {
                var s = PerfDataSnapshot.Parse(original.AsSpan(0, length));
                Assert.True(length >= used, $"a {length}-byte prefix parsed although used is {used}");
                Assert.True(s.Count > 100);
            }
            catch (PerfDataFormatException)
            {
                if (length < used) refusedBelowUsed++;
            }
        }

        Assert.Equal(used + 0, refusedBelowUsed);
    }

    private static void ThroughAMappedFile(TempDir dir, int i, byte[] content)
    {
        var path = dir.File("m" + i, content);
        try
        {
            using var file = PerfDataFile.Open(path);
            Exercise(file.Read(TimeSpan.Zero));
        }
        catch (PerfDataFormatException)
        {
        }
        catch (Exception ex)
        {
            throw new Xunit.Sdk.XunitException($"mutation {i} (seed {Seed}) through a file threw {ex}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Touches every value and the typed view; false when the typed view refused the snapshot.</summary>
    private static bool Exercise(PerfDataSnapshot snapshot)
    {
        foreach (var c in snapshot)
        {
            if (c.Type == PerfDataType.ByteArray) Assert.NotNull(c.StringValue);
        }

        try
        {
            var counters = HotSpotCounters.From(snapshot);
            Assert.True(counters.TickFrequency > 0);
            Assert.True(counters.Spaces.Count <= (4 * 8) + 2);
            return true;
        }
        catch (PerfDataFormatException)
        {
            return false;
        }
    }

    private static byte[] Mutate(byte[] original, List<int> entries, Random rng)
    {
        var m = (byte[])original.Clone();
        var used = BinaryPrimitives.ReadInt32LittleEndian(original.AsSpan(8));
        switch (rng.Next(7))
        {
            case 0: // a few flipped bits anywhere in the used bytes
                for (var k = rng.Next(1, 5); k > 0; k--) m[rng.Next(used)] ^= (byte)(1 << rng.Next(8));
                break;
            case 1: // an entry's length, name offset, vector length or data offset
            {
                var e = entries[rng.Next(entries.Count)];
                var field = e + ((int[])[0, 4, 8, 16])[rng.Next(4)];
                var current = BinaryPrimitives.ReadInt32LittleEndian(m.AsSpan(field));
                BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(field), Interesting(rng, current, used, m.Length));
                break;
            }

            case 2: // an entry's type, flags, units or variability
                m[entries[rng.Next(entries.Count)] + 12 + rng.Next(4)] = (byte)rng.Next(256);
                break;
            case 3: // a prologue field
            {
                var field = ((int[])[4, 5, 6, 7, 8, 12, 16, 24, 28])[rng.Next(9)];
                if (field < 8) m[field] = (byte)rng.Next(4);
                else BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(field),
                    Interesting(rng, BinaryPrimitives.ReadInt32LittleEndian(m.AsSpan(field)), used, m.Length));
                break;
            }

            case 4: // truncation
                return m.AsSpan(0, rng.Next(m.Length)).ToArray();
            case 5: // a run of random bytes
            {
                var start = rng.Next(used);
                rng.NextBytes(m.AsSpan(start, Math.Min(rng.Next(1, 64), m.Length - start)));
                break;
            }

            default: // a run of zeros (an entry half written)
            {
                var start = rng.Next(used);
                m.AsSpan(start, Math.Min(rng.Next(1, 64), m.Length - start)).Clear();
                break;
            }
        }

        return m;
    }

    private static int Interesting(Random rng, int current, int used, int capacity) => rng.Next(12) switch
    {
        0 => 0,
        1 => -1,
        2 => int.MaxValue,
        3 => int.MinValue,
        4 => used,
        5 => capacity,
        6 => current + 1,
        7 => current - 1,
        8 => current + 8,
        9 => current - 8,
        10 => 20,
        _ => rng.Next(),
    };

    private static List<int> EntryOffsets(byte[] file)
    {
        var offsets = new List<int>();
        var offset = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(24));
        var count = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(28));
        for (var i = 0; i < count; i++)
        {
            offsets.Add(offset);
            offset += BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(offset));
        }

        return offsets;
    }

    private static async Task<byte[]> RealFileAsync()
    {
        using var jvm = JavaFixture.Start("IdleService", ["-Xmx64m"]);
        await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(60));
        await jvm.WaitForPerfDataAsync(TimeSpan.FromSeconds(60));
        using var file = PerfDataFile.Open(jvm.PerfDataPath);
        file.Read(); // waits for the accessible flag
        var bytes = file.ReadRawBytes();
        Assert.Equal(1, bytes[4]); // this machine is little-endian; the mutator assumes it
        return bytes;
    }
}
