using Apm.Hprof.Reader;

namespace Apm.Hprof.Graph;

/// <summary>A field of a class as laid out in instance records, with its byte offset in the instance data.</summary>
public readonly record struct HeapField(string Name, HprofBasicType Type, int Offset, int DeclaringClass);

/// <summary>A static field with its raw value (an object id for object fields).</summary>
public readonly record struct HeapStaticField(string Name, HprofBasicType Type, long Value);

/// <summary>
/// A class of the dump (or a synthetic class for primitive arrays whose class was not dumped). Classes are
/// few (thousands), so each is an object; instances are not.
/// </summary>
public sealed class HeapClass
{
    internal HeapClass(int index, long id, string name)
    {
        Index = index;
        Id = id;
        Name = name;
    }

    /// <summary>Dense class index, the value stored per object.</summary>
    public int Index { get; }

    /// <summary>Class object id, 0 for synthetic primitive-array classes.</summary>
    public long Id { get; }

    /// <summary>Java name: "java.lang.String", "byte[]", "java.lang.Object[]".</summary>
    public string Name { get; }

    /// <summary>Index of the super class, -1 for java.lang.Object or unknown.</summary>
    public int SuperClass { get; internal set; } = -1;

    /// <summary>Instance size as the dump states it.</summary>
    public int InstanceSize { get; internal set; }

    /// <summary>Shallow size of an instance in the JVM (header, fields, alignment), which is what VisualVM reports.</summary>
    public int JvmInstanceSize { get; internal set; }

    /// <summary>Object id of the class loader, 0 for the boot loader.</summary>
    public long ClassLoaderId { get; internal set; }

    /// <summary>Fields declared by this class only, in dump order.</summary>
    public IReadOnlyList<HeapField> DeclaredFields { get; internal set; } = [];

    /// <summary>All instance fields in the order of instance data: this class first, then its supers.</summary>
    public IReadOnlyList<HeapField> Layout => LayoutArray;

    /// <summary>The layout as an array, for loops that read fields by name without an enumerator.</summary>
    internal HeapField[] LayoutArray { get; set; } = [];

    public IReadOnlyList<HeapStaticField> StaticFields { get; internal set; } = [];

    /// <summary>Bytes of instance data the layout expects.</summary>
    public int LayoutSize { get; internal set; }

    /// <summary>Dense object index of the class object, -1 for synthetic classes.</summary>
    public int ObjectIndex { get; internal set; } = -1;

    /// <summary>Element type for array classes; null for instance classes.</summary>
    public HprofBasicType? ArrayElementType { get; internal set; }

    public bool IsArray => ArrayElementType != null;

    /// <summary>Number of objects of exactly this class.</summary>
    public int InstanceCount { get; internal set; }

    /// <summary>Sum of shallow sizes of objects of exactly this class.</summary>
    public long ShallowSizeTotal { get; internal set; }

    /// <summary>True for java.lang.ref.Reference and its subclasses (weak, soft, phantom, final).</summary>
    public bool IsReference { get; internal set; }

    /// <summary>Offsets of object fields in instance data (referent excluded for references), precomputed for edge decoding.</summary>
    internal int[] RefOffsets { get; set; } = [];

    /// <summary>Offset of Reference.referent in instance data, -1 when not a reference class.</summary>
    internal int ReferentOffset { get; set; } = -1;

    public override string ToString() => Name;
}
