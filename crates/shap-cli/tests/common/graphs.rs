//! Small ONNX graphs of any input size and output count, built in the tests (no fixture holds
//! them): a Flatten, a MatMul to `k` outputs and a Reshape.

use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto, tensor_proto::DataType, tensor_shape_proto::Dimension,
    tensor_shape_proto::dimension, type_proto,
};

pub fn info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = |d: &Option<i64>| Dimension {
        value: Some(match d {
            Some(v) => dimension::Value::DimValue(*v),
            None => dimension::Value::DimParam("N".into()),
        }),
        ..Dimension::default()
    };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(dim).collect(),
                }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

pub fn node(op: &str, input: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: input.iter().map(|i| (*i).to_string()).collect(),
        output: vec![output.into()],
        ..NodeProto::default()
    }
}

/// `dir/name`: images `(N, C, H, W)` averaged, then broadcast to `k` outputs:
/// a model of a few hundred bytes with any input size and output count.
pub fn model(dir: &Path, name: &str, chw: [i64; 3], k: i64) -> PathBuf {
    let shape = TensorProto {
        name: "k".into(),
        data_type: DataType::Int64 as i32,
        dims: vec![2],
        int64_data: vec![1, k],
        ..TensorProto::default()
    };
    let [c, h, w] = chw;
    let graph = GraphProto {
        node: vec![
            node("GlobalAveragePool", &["x"], "pool"),
            node("Flatten", &["pool"], "flat"),
            NodeProto {
                attribute: vec![tract_onnx::pb::AttributeProto {
                    name: "axes".into(),
                    r#type: tract_onnx::pb::attribute_proto::AttributeType::Ints as i32,
                    ints: vec![1],
                    ..Default::default()
                }],
                ..node("ReduceMean", &["flat"], "mean")
            },
            node("Expand", &["mean", "k"], "y"),
        ],
        initializer: vec![shape],
        input: vec![info("x", &[None, Some(c), Some(h), Some(w)])],
        output: vec![info("y", &[None, Some(k)])],
        ..GraphProto::default()
    };
    let m = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(graph),
        ..ModelProto::default()
    };
    let path = dir.join(name);
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    path
}
