namespace Apm.Hprof.Reader;

/// <summary>GC root kinds as tagged in HEAP_DUMP sub-records (HotSpot's plus the Android extensions Shark knows).</summary>
public enum HprofRootKind : byte
{
    JniGlobal = 0x01,
    JniLocal = 0x02,
    JavaFrame = 0x03,
    NativeStack = 0x04,
    StickyClass = 0x05,
    ThreadBlock = 0x06,
    MonitorUsed = 0x07,
    ThreadObject = 0x08,
    InternedString = 0x89,
    Finalizing = 0x8A,
    Debugger = 0x8B,
    ReferenceCleanup = 0x8C,
    VmInternal = 0x8D,
    JniMonitor = 0x8E,
    Unreachable = 0x90,
    Unknown = 0xFF,
}

/// <summary>HPROF basic types of fields and primitive arrays.</summary>
public enum HprofBasicType : byte
{
    Object = 2,
    Boolean = 4,
    Char = 5,
    Float = 6,
    Double = 7,
    Byte = 8,
    Short = 9,
    Int = 10,
    Long = 11,
}

/// <summary>Top-level record tags and heap-dump sub-record tags.</summary>
public static class HprofTag
{
    public const int Utf8 = 0x01;
    public const int LoadClass = 0x02;
    public const int UnloadClass = 0x03;
    public const int Frame = 0x04;
    public const int Trace = 0x05;
    public const int AllocSites = 0x06;
    public const int HeapSummary = 0x07;
    public const int StartThread = 0x0A;
    public const int EndThread = 0x0B;
    public const int HeapDump = 0x0C;
    public const int CpuSamples = 0x0D;
    public const int ControlSettings = 0x0E;
    public const int HeapDumpSegment = 0x1C;
    public const int HeapDumpEnd = 0x2C;

    public const int ClassDump = 0x20;
    public const int InstanceDump = 0x21;
    public const int ObjectArrayDump = 0x22;
    public const int PrimitiveArrayDump = 0x23;
    public const int PrimitiveArrayNoData = 0xC3;
    public const int HeapDumpInfo = 0xFE;
}

/// <summary>Sizes and names of basic types.</summary>
public static class HprofTypes
{
    /// <summary>Byte size of a value of <paramref name="type"/> in the dump, or 0 when the type byte is invalid.</summary>
    public static int SizeOf(HprofBasicType type, int idSize) => type switch
    {
        HprofBasicType.Object => idSize,
        HprofBasicType.Boolean or HprofBasicType.Byte => 1,
        HprofBasicType.Char or HprofBasicType.Short => 2,
        HprofBasicType.Float or HprofBasicType.Int => 4,
        HprofBasicType.Double or HprofBasicType.Long => 8,
        _ => 0,
    };

    /// <summary>Java name of a primitive type ("int"), used for array class names.</summary>
    public static string JavaName(HprofBasicType type) => type switch
    {
        HprofBasicType.Boolean => "boolean",
        HprofBasicType.Char => "char",
        HprofBasicType.Float => "float",
        HprofBasicType.Double => "double",
        HprofBasicType.Byte => "byte",
        HprofBasicType.Short => "short",
        HprofBasicType.Int => "int",
        HprofBasicType.Long => "long",
        _ => "java.lang.Object",
    };
}

/// <summary>A declared instance field of a class dump.</summary>
public readonly record struct HprofFieldDecl(long NameId, HprofBasicType Type);

/// <summary>A static field of a class dump with its raw value (an object id for object fields).</summary>
public readonly record struct HprofStaticField(long NameId, HprofBasicType Type, long Value);

/// <summary>One CLASS_DUMP sub-record, fully parsed (classes are few, so an object per class is fine).</summary>
public sealed record HprofClassDump(
    long ClassId,
    long SuperClassId,
    long ClassLoaderId,
    int InstanceSize,
    long RecordOffset,
    IReadOnlyList<HprofStaticField> StaticFields,
    IReadOnlyList<HprofFieldDecl> InstanceFields);
