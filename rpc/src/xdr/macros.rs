//! RFC 4506 sections 4.3, 4.14, 4.15: declaring enumerations, structures and discriminated
//! unions once, with the maximum length of every variable-length member next to it.

/// Declares an XDR structure (RFC 4506 section 4.14): a Rust struct whose fields are encoded
/// in order, with `XdrEncode` and `XdrDecode` implemented.
///
/// A variable-length member (`String`, [`Opaque`](crate::xdr::Opaque), `Vec<T>`, or an
/// `Option` of one) may carry its XDR `<max>` as `[max = N]`; decoding refuses a longer one
/// before allocating.
///
/// ```
/// pvd_rpc::xdr_struct! {
///     /// A named blob.
///     #[derive(Debug, Clone, PartialEq)]
///     pub struct Blob {
///         pub name: String [max = 255],
///         pub data: pvd_rpc::xdr::Opaque [max = 1 << 20],
///         pub tags: Vec<u32> [max = 16],
///         pub next: Option<Box<Blob>>,
///     }
/// }
/// let b = Blob { name: "a".into(), data: vec![1, 2, 3].into(), tags: vec![7], next: None };
/// let wire = pvd_rpc::xdr::to_bytes(&b);
/// assert_eq!(pvd_rpc::xdr::from_bytes::<Blob>(&wire).unwrap(), b);
/// ```
#[macro_export]
macro_rules! xdr_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $fty:ty $([max = $max:expr])?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $(
                $(#[$fmeta])*
                $fvis $field: $fty,
            )*
        }

        impl $crate::xdr::XdrEncode for $name {
            #[allow(unused_variables)]
            fn encode<B: $crate::bytes::BufMut>(&self, buf: &mut B) {
                $( $crate::xdr::XdrEncode::encode(&self.$field, buf); )*
            }
            fn encoded_len(&self) -> usize {
                0 $( + $crate::xdr::XdrEncode::encoded_len(&self.$field) )*
            }
        }

        impl $crate::xdr::XdrDecode for $name {
            #[allow(unused_variables)]
            fn decode(
                r: &mut $crate::xdr::XdrReader<'_>,
            ) -> ::core::result::Result<Self, $crate::xdr::XdrError> {
                Ok($name {
                    $( $field: $crate::xdr_struct!(@decode r, $fty $(, $max)?), )*
                })
            }
        }
    };
    (@decode $r:ident, $fty:ty) => {
        <$fty as $crate::xdr::XdrDecode>::decode($r)?
    };
    (@decode $r:ident, $fty:ty, $max:expr) => {
        <$fty as $crate::xdr::XdrDecodeBounded>::decode_bounded($r, $max)?
    };
}

/// Declares an XDR enumeration (RFC 4506 section 4.3) as an open newtype over `i32` with one
/// constant per named value: unknown values decode, and policy decides what to do with them.
///
/// ```
/// pvd_rpc::xdr_enum! {
///     pub enum Color { RED = 0, GREEN = 1, BLUE = 2 }
/// }
/// assert_eq!(Color::GREEN.0, 1);
/// assert_eq!(pvd_rpc::xdr::from_bytes::<Color>(&[0, 0, 0, 9]).unwrap(), Color(9));
/// ```
#[macro_export]
macro_rules! xdr_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis struct $name(pub i32);

        #[allow(dead_code)]
        impl $name {
            $( $(#[$vmeta])* pub const $variant: $name = $name($value); )*

            /// The constant's name, if the value has one.
            pub fn name(self) -> Option<&'static str> {
                $( if self == Self::$variant { return Some(stringify!($variant)); } )*
                None
            }
        }

        impl $crate::xdr::XdrEncode for $name {
            fn encode<B: $crate::bytes::BufMut>(&self, buf: &mut B) {
                buf.put_i32(self.0);
            }
            fn encoded_len(&self) -> usize {
                4
            }
        }

        impl $crate::xdr::XdrDecode for $name {
            fn decode(
                r: &mut $crate::xdr::XdrReader<'_>,
            ) -> ::core::result::Result<Self, $crate::xdr::XdrError> {
                Ok($name(r.get_i32()?))
            }
        }
    };
}

/// Declares an XDR discriminated union (RFC 4506 section 4.15) as a Rust enum with one
/// single-field variant per arm; `()` is the `void` arm. The discriminant is an `int` on the
/// wire; each arm's value is any constant expression of type `i32`. An optional final
/// `; default => Variant` keeps unknown discriminants (as `Variant(i32)`, XDR's `default: void`)
/// instead of refusing them.
///
/// ```
/// pvd_rpc::xdr_union! {
///     #[derive(Debug, Clone, PartialEq)]
///     pub enum Outcome {
///         0 => Ok(u64),
///         1 => Err(String [max = 64]),
///         2 => Nothing(()),
///     }
/// }
/// let wire = pvd_rpc::xdr::to_bytes(&Outcome::Err("no".into()));
/// assert_eq!(pvd_rpc::xdr::from_bytes::<Outcome>(&wire).unwrap(), Outcome::Err("no".into()));
/// ```
#[macro_export]
macro_rules! xdr_union {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $disc:expr => $variant:ident ( $aty:ty $([max = $max:expr])? ) ),+ $(,)?
            $(; default => $dvariant:ident $(,)?)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $variant($aty), )+
            $( $dvariant(i32), )?
        }

        impl $crate::xdr::XdrEncode for $name {
            fn encode<B: $crate::bytes::BufMut>(&self, buf: &mut B) {
                match self {
                    $( $name::$variant(v) => {
                        buf.put_i32($disc);
                        $crate::xdr::XdrEncode::encode(v, buf);
                    } )+
                    $( $name::$dvariant(d) => buf.put_i32(*d), )?
                }
            }
            fn encoded_len(&self) -> usize {
                match self {
                    $( $name::$variant(v) => 4 + $crate::xdr::XdrEncode::encoded_len(v), )+
                    $( $name::$dvariant(_) => 4, )?
                }
            }
        }

        impl $crate::xdr::XdrDecode for $name {
            fn decode(
                r: &mut $crate::xdr::XdrReader<'_>,
            ) -> ::core::result::Result<Self, $crate::xdr::XdrError> {
                let d: i32 = r.get_i32()?;
                $(
                    if d == ($disc) {
                        return Ok($name::$variant($crate::xdr_struct!(@decode r, $aty $(, $max)?)));
                    }
                )+
                $( return Ok($name::$dvariant(d)); )?
                #[allow(unreachable_code)]
                Err($crate::xdr::XdrError::UnknownDiscriminant {
                    union: stringify!($name),
                    value: d,
                })
            }
        }
    };
}
