using System.Buffers.Binary;
using Apm.Jvm.PerfData;

namespace Apm.Jvm.PerfData.Tests;

public class PerfDataParserTests
{
    private static PerfDataWriter Sample(bool little = true) => new PerfDataWriter { LittleEndian = little }
        .Long("sun.os.hrt.frequency", 1_000_000_000, PerfDataVariability.Constant, PerfDataUnits.Hertz)
        .Long("sun.gc.collector.0.invocations", 42, PerfDataVariability.Monotonic, PerfDataUnits.Events)
        .String("sun.rt.javaCommand", "com.example.Main --port 8080")
        .String("sun.gc.cause", "No GC", PerfDataVariability.Variable, vectorLength: 64)
        .Long("negative", -5);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Longs_and_strings_read_back_in_either_byte_order(bool little)
    {
        var s = PerfDataSnapshot.Parse(Sample(little).Build());

        Assert.Equal(5, s.Count);
        Assert.Equal(little, s.IsLittleEndian);
        Assert.True(s.TryGetLong("sun.os.hrt.frequency", out var f));
        Assert.Equal(1_000_000_000, f);
        Assert.Equal(42, s.GetLongOrDefault("sun.gc.collector.0.invocations"));
        Assert.Equal(-5, s.GetLongOrDefault("negative"));
        Assert.True(s.TryGetString("sun.rt.javaCommand", out var cmd));
        Assert.Equal("com.example.Main --port 8080", cmd);
        Assert.Equal("No GC", s.GetStringOrDefault("sun.gc.cause"));
        Assert.False(s.TryGetLong("sun.rt.javaCommand", out _));
        Assert.False(s.TryGetString("sun.os.hrt.frequency", out _));
        Assert.False(s.TryGetLong("missing", out _));
        Assert.Equal(7, s.GetLongOrDefault("missing", 7));
    }

    [Fact]
    public void Enumeration_lists_every_counter_with_its_metadata_in_file_order()
    {
        var counters = PerfDataSnapshot.Parse(Sample().Build()).ToList();

        Assert.Equal(["sun.os.hrt.frequency", "sun.gc.collector.0.invocations", "sun.rt.javaCommand", "sun.gc.cause", "negative"],
            counters.Select(c => c.Name));
        Assert.Equal(PerfDataUnits.Hertz, counters[0].Units);
        Assert.Equal(PerfDataVariability.Monotonic, counters[1].Variability);
        Assert.Equal(PerfDataType.ByteArray, counters[3].Type);
        Assert.Equal(64, counters[3].VectorLength);
        Assert.Equal("No GC", counters[3].StringValue);
        Assert.Equal(42, counters[1].LongValue);
    }

    [Fact]
    public void A_buffer_shorter_than_the_prologue_is_truncated()
    {
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(Sample().Build().AsSpan(0, 10)));
        Assert.Contains("truncated: 10 bytes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_zero_filled_file_has_a_bad_magic()
    {
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(new byte[32768]));
        Assert.Contains("bad magic 0x00000000", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_wrong_magic_is_named_in_the_error()
    {
        var buffer = Sample().Build();
        BinaryPrimitives.WriteUInt32BigEndian(buffer, 0xCAFEBABE);
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer));
        Assert.Contains("bad magic 0xCAFEBABE", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(3, 0)]
    [InlineData(2, 1)]
    public void An_unknown_version_is_refused(byte major, byte minor)
    {
        var buffer = Sample().Build();
        buffer[5] = major;
        buffer[6] = minor;
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer));
        Assert.Contains($"unsupported version {major}.{minor}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_byte_order_is_refused()
    {
        var buffer = Sample().Build();
        buffer[4] = 7;
        Assert.Contains("bad byte order 7", Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_buffer_whose_accessible_flag_is_clear_is_not_accessible_yet()
    {
        var buffer = new PerfDataWriter { Accessible = 0 }.Long("a", 1).Build();
        Assert.Throws<PerfDataNotAccessibleException>(() => PerfDataSnapshot.Parse(buffer));
    }

    [Fact]
    public void Used_beyond_the_buffer_is_refused()
    {
        var w = Sample();
        var buffer = w.Build();
        w.WriteInt(buffer.AsSpan(8), buffer.Length + 1);
        Assert.Contains("used 4097 outside", Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void More_entries_than_fit_are_refused()
    {
        var w = Sample();
        var buffer = w.Build();
        w.WriteInt(buffer.AsSpan(28), int.MaxValue);
        Assert.Contains("entries cannot fit", Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_entry_name_offset_beyond_the_entry_names_the_entry()
    {
        var w = Sample();
        var (buffer, offsets) = w.BuildWithOffsets();
        w.WriteInt(buffer.AsSpan(offsets[1] + 4), 100_000);
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer));
        Assert.Contains("entry 1 name offset 100000 beyond", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_entry_length_beyond_the_used_bytes_names_the_entry()
    {
        var w = Sample();
        var (buffer, offsets) = w.BuildWithOffsets();
        w.WriteInt(buffer.AsSpan(offsets[4]), 4000);
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer));
        Assert.Contains("entry 4 length 4000", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_data_offset_beyond_the_entry_names_the_entry()
    {
        var w = Sample();
        var (buffer, offsets) = w.BuildWithOffsets();
        w.WriteInt(buffer.AsSpan(offsets[0] + 16), 60);
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer));
        Assert.Contains("entry 0 data offset 60", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_string_longer_than_its_entry_is_refused()
    {
        var w = Sample();
        var (buffer, offsets) = w.BuildWithOffsets();
        w.WriteInt(buffer.AsSpan(offsets[2] + 8), 1000);
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer));
        Assert.Contains("entry 2 data offset", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_data_type_is_named()
    {
        var (buffer, offsets) = Sample().BuildWithOffsets();
        buffer[offsets[3] + 12] = (byte)'Z';
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer));
        Assert.Contains("entry 3 has unsupported data type 0x5A", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_name_without_its_terminating_nul_is_refused()
    {
        var w = new PerfDataWriter().Long("abcdefg", 1);
        var (buffer, offsets) = w.BuildWithOffsets();
        // Name at 20..27, data at 32: fill the name's NUL and the padding up to the data with letters.
        buffer.AsSpan(offsets[0] + 20, 20).Fill((byte)'x');
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataSnapshot.Parse(buffer));
        Assert.Contains("entry 0 name is not NUL-terminated", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("IdleService", "IdleService")]
    [InlineData("com.example.Main --port 8080", "com.example.Main")]
    [InlineData("/opt/app/service.jar --spring.profiles.active=prod", "/opt/app/service.jar")]
    [InlineData("-jar app.jar x", "app.jar")]
    [InlineData("", "")]
    public void The_main_class_is_the_first_token_of_the_command(string command, string expected)
    {
        Assert.Equal(expected, HotSpotCounters.MainClassOf(command));
    }

    [Fact]
    public void Typed_counters_refuse_a_buffer_without_a_clock_frequency()
    {
        var s = PerfDataSnapshot.Parse(new PerfDataWriter().Long("sun.rt.safepoints", 1).Build());
        var ex = Assert.Throws<PerfDataFormatException>(() => HotSpotCounters.From(s));
        Assert.Contains("sun.os.hrt.frequency", ex.Message, StringComparison.Ordinal);
    }
}
